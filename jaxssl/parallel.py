"""The data mesh: a 1-D ("data",) mesh over every device; batches sharded, state replicated.

Multi-host: call `jax.distributed.initialize()` first (the CLI's --distributed); each process then
feeds only its rows of the global batch. BatchNorm statistics span the global batch.
"""

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxssl.errors import UserError


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """The ("data",) mesh over `devices` (all of them by default), in jax.make_mesh's order."""
  devices = devices if devices is not None else jax.devices()
  return jax.make_mesh((len(devices),), ('data',), (AxisType.Auto,), devices=devices)


def batch_sharding(mesh, leading: int = 0) -> NamedSharding:
  """Rows over the data axis; `leading` unsharded axes before them (steps of a stacked batch)."""
  return NamedSharding(mesh, P(*[None] * leading, 'data'))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def is_main() -> bool:
  """This process writes the run's files and prints its results (process 0 of a multi-host run)."""
  return jax.process_index() == 0


def check_divisible(n: int, what: str, mesh) -> None:
  if n % mesh.size:
    raise UserError(f'{what}={n} must be divisible by the number of devices ({mesh.size})')


def process_rows(n: int) -> slice:
  """This process's rows of a global batch of n rows."""
  per = n // jax.process_count()
  return slice(jax.process_index() * per, (jax.process_index() + 1) * per)


def to_device(local: dict[str, np.ndarray], mesh, leading: int = 0) -> dict[str, jax.Array]:
  """Process-local rows -> global arrays sharded over the data axis (after `leading` axes)."""
  sharding = batch_sharding(mesh, leading)
  if jax.process_count() == 1:
    # One batched transfer: half the host time per step of one call per array (0.25 vs 0.55 ms
    # for the GAN's batch on CPU), which bounds a small model's steps/s on a GPU.
    return jax.device_put(local, sharding)

  def global_shape(v):  # every process holds its rows of axis `leading`
    return (*v.shape[:leading], v.shape[leading] * jax.process_count(), *v.shape[leading + 1 :])

  return {
    k: jax.make_array_from_process_local_data(sharding, v, global_shape(v))
    for k, v in local.items()
  }
