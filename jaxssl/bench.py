"""`jaxssl bench`: compile time, step time, images/s, memory, FLOPs and MFU of a compiled train
step, and how much of the step is the backbone."""

import json
import re
import resource
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxssl import config as config_lib
from jaxssl import methods, parallel, xla
from jaxssl.data import datasets
from jaxssl.train import build

# Peak dense FLOP/s per device (TFLOP/s; vendor datasheets, no sparsity): (pattern of
# jax.Device.device_kind, bfloat16, float32). float32 on NVIDIA is the TF32 tensor-core peak, which
# XLA uses for float32 matmuls and convolutions at JAX's default precision; on TPU the default
# precision computes float32 matmuls in one bfloat16 pass, so the bfloat16 peak is the one.
PEAK_TFLOPS = (
  (r'H200', 989.4, 494.7),
  (r'H100.*PCIe', 756.0, 378.0),
  (r'H100', 989.4, 494.7),  # SXM
  (r'A100', 312.0, 156.0),
  (r'\bL4\b', 121.0, 60.0),
  (r'TPU v4', 275.0, 275.0),
  (r'TPU v5 ?(lite|e)', 197.0, 197.0),
  (r'TPU v5', 459.0, 459.0),  # v5p
  (r'TPU v6 ?(lite|e)', 918.0, 918.0),
)


def peak_flops(device_kind: str, dtype: str) -> float | None:
  """Peak dense FLOP/s of one device of this kind for `dtype`, or None where not tabled (CPU)."""
  for pattern, bf16, fp32 in PEAK_TFLOPS:
    if re.search(pattern, device_kind):
      return 1e12 * (bf16 if dtype == 'bfloat16' else fp32)
  return None


def flops(lowered) -> float | None:
  """FLOPs of one call of a lowered (not yet compiled) program, all devices together, from XLA's
  cost analysis of the program before the backend rewrites it. The compiled program's analysis
  counts one device's share and misses what the backend hands to libraries: on an H100 it gave
  12.9 of a FixMatch step's 1,137 GFLOP, the convolutions being cuDNN calls."""
  try:
    cost = lowered.cost_analysis()
  except NotImplementedError:
    cost = None
  if cost is None:
    cost = _cost_on_cpu(lowered)
  cost = cost[0] if isinstance(cost, list | tuple) else cost
  return (cost or {}).get('flops')


def _cost_on_cpu(lowered):
  """XLA:CPU's analysis of the same unoptimized HLO, for the backends that do not analyse a lowered
  program (CUDA and TPU run as PJRT plugins, whose Lowered.cost_analysis is None: jax#22713).
  Private API, so any failure is None: the bench then reports no FLOPs rather than wrong ones."""
  try:
    from jax._src.lib import _jax

    module = lowered.compiler_ir('hlo').as_hlo_module()
    return _jax.hlo_module_cost_analysis(jax.devices('cpu')[0].client, module)
  except Exception:  # noqa: BLE001
    return None


def param_count(state) -> int:
  """Trained parameters in a run's state (every leaf under a 'params' key): what a data-parallel
  step all-reduces as gradients."""
  leaves = jax.tree_util.tree_flatten_with_path(state)[0]
  return sum(x.size for path, x in leaves if any(getattr(k, 'key', None) == 'params' for k in path))


def _synthetic_batches(run, k: int = 1):
  """The first batch of the (synthetic) data, over and over: measures the step alone. k > 1: k
  copies stacked, the input of one call of run.train_steps."""
  host = run.pipeline.host_batch(0)
  if k > 1:
    host = {key: np.stack([v] * k) for key, v in host.items()}
  batch = parallel.to_device(host, run.mesh, leading=int(k > 1))
  while True:
    yield batch


def _peak_memory() -> tuple[float | None, str]:
  # This process's first device: another process's devices have no memory statistics here.
  stats = jax.local_devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    return stats['peak_bytes_in_use'] / 2**20, 'device peak'
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'host max RSS'


def _time(fn, args, steps: int, warmup: int) -> list[float]:
  times = []
  for i in range(warmup + steps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    if i >= warmup:
      times.append(time.perf_counter() - t0)
  return times


def backbone_step(run, views: int):
  """(compiled, its FLOPs, args) of the backbone alone: one forward and backward pass in training
  mode over `views` images, sharded as the step's batch; None for methods without a `backbone`
  knob."""
  cfg = run.config
  if 'backbone' not in cfg:
    return None
  from jaxssl import core
  from jaxssl.methods import _classifier as C

  ds = run.dataset
  spec = methods.DataSpec(ds.image_shape, ds.num_classes, ds.num_unlabeled, 1)
  new = lambda key: C.backbone(cfg, spec, key)
  net = C.Net(core.graphdef(new))
  _, params, rest = core.split(new(jax.random.key(0)))

  def fwd_bwd(params, rest, images):
    loss = lambda p: jnp.sum(net(p, rest, images, train=True)[0])
    return jax.grad(loss)(params)

  images = jax.device_put(
    jnp.zeros((views, *ds.image_shape), jnp.float32), parallel.batch_sharding(run.mesh)
  )
  rep = parallel.replicated(run.mesh)
  params, rest = jax.device_put(params, rep), jax.device_put(rest, rep)
  lowered = xla.jit(fwd_bwd).lower(params, rest, images)
  return lowered.compile(), flops(lowered), (params, rest, images)


def run_bench(config, steps: int = 50, warmup: int = 5, data: str = 'synthetic') -> dict:
  """Times `steps` compiled steps after `warmup`; the step is compiled ahead of time from shapes."""
  if data not in ('synthetic', 'real'):
    raise ValueError(f"--data must be 'synthetic' or 'real', got {data!r}")
  # Synthetic: random images shaped like the dataset, so no download or preparation is needed.
  dataset = None
  if data == 'synthetic':
    dataset = datasets.synthetic(config_lib.resolve(config).dataset)
  run = build(config, dataset=dataset)
  cfg = run.config
  state = run.init()
  # steps_per_call = k > 1: each timed call scans k steps (run.train_steps); times are per step.
  k = cfg.steps_per_call
  if data == 'synthetic':
    batches = _synthetic_batches(run, k)
  elif k == 1:
    batches = run.pipeline.iterate(0, steps + warmup + 1)
  else:
    batches = run.pipeline.iterate_calls([(i * k, k) for i in range(steps + warmup + 1)])
  batch = next(batches)
  t0 = time.perf_counter()
  lowered = (run.train_step if k == 1 else run.train_steps).lower(state, batch)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t0
  if k > 1:  # XLA's cost analysis counts a loop's body once, whatever its trip count
    one = jax.tree.map(lambda b: jax.ShapeDtypeStruct(b.shape[1:], b.dtype), batch)
    lowered = run.train_step.lower(state, one)
  times = []
  for i in range(warmup + steps):
    t0 = time.perf_counter()
    batch = next(batches)  # real data: waits for the prefetch thread, so input overhead shows
    state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    if i >= warmup:
      times.append((time.perf_counter() - t0) / k)
  step_s = statistics.median(times)
  labeled = cfg.batch_size
  unlabeled = labeled * cfg.uratio if run.method.unlabeled_views else 0
  total = labeled + unlabeled
  # FixMatch: 64 + 2·448. One pass per view drawn: VAT's, Mean Teacher's, (Re)MixMatch's further
  # passes over the same images count as the rest (README: backbone_fraction a lower bound).
  forwarded = labeled + unlabeled * len(run.method.unlabeled_views)
  memory, memory_kind = _peak_memory()
  device = jax.devices()[0].device_kind
  dtype = cfg.get('compute_dtype', 'float32')
  step_flops = flops(lowered)
  achieved = step_flops / step_s if step_flops else None
  peak = peak_flops(device, dtype)
  backbone = {}
  compiled_backbone = backbone_step(run, forwarded)
  if compiled_backbone is not None:
    fn, bb_flops, args = compiled_backbone
    backbone_s = statistics.median(_time(fn, args, steps, warmup))
    backbone = {
      'backbone_ms': round(1e3 * backbone_s, 3),
      'rest_ms': round(1e3 * (step_s - backbone_s), 3),
      'backbone_fraction': round(backbone_s / step_s, 3),
      'backbone_gflops': round(bb_flops / 1e9, 3) if bb_flops else None,
    }
  return {
    'method': cfg.method,
    'dataset': cfg.dataset,
    'data': data,
    'steps': steps,
    'batch_labeled': labeled,
    'batch_total': total,
    'batch_views': forwarded,
    'steps_per_call': k,
    'compile_s': round(compile_s, 3),
    'step_ms_median': round(1e3 * step_s, 3),
    'step_ms_p90': round(1e3 * float(np.percentile(times, 90)), 3),
    'images_per_s_labeled': round(labeled / step_s, 1),
    'images_per_s_total': round(total / step_s, 1),
    'views_per_s': round(forwarded / step_s, 1),
    'compute_dtype': dtype,
    'gflops_per_step': round(step_flops / 1e9, 3) if step_flops else None,
    'params': param_count(state),
    'achieved_tflops': round(achieved / 1e12, 4) if achieved else None,
    'peak_tflops': round(peak * jax.device_count() / 1e12, 1) if peak else None,
    'mfu': round(achieved / (peak * jax.device_count()), 4) if achieved and peak else None,
    **backbone,
    'peak_memory_mib': round(memory, 1) if memory else None,
    'memory_kind': memory_kind,
    'device': device,
    'device_count': jax.device_count(),
    'process_count': jax.process_count(),
    'process_index': jax.process_index(),
    'platform': jax.default_backend(),
    'jax': jax.__version__,
    # Which convolutions the step ran: XLA's threaded ones (jaxssl.xla) or XLA's defaults.
    'xla_options': xla.compiler_options(),
  }


def table(result: dict) -> str:
  width = max(map(len, result))
  return '\n'.join(f'{k:<{width}}  {v}' for k, v in result.items())


def write(result: dict, path: str) -> None:
  with open(path, 'w') as f:
    json.dump(result, f, indent=2)
    f.write('\n')
