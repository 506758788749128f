"""Orbax checkpoints of everything an exact resume needs: the train state pytree (params,
optimizer states, averaged copies, step, root key) and JSON meta (data-stream position, timers).
"""

from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxssl.errors import UserError


class Checkpoints:
  """Save every N steps and at the end, keep the last K, restore the latest."""

  def __init__(self, workdir: str, keep: int):
    self.directory = Path(workdir).absolute() / 'checkpoints'
    self._manager = ocp.CheckpointManager(
      self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state, meta: dict) -> None:
    self._manager.save(
      step,
      args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
      force=True,
    )

  def restore(self, step: int, abstract_state):
    """(state, meta) of checkpoint `step`, placed as `abstract_state` says."""
    try:
      out = self._manager.restore(
        step,
        args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()
        ),
      )
    except Exception as e:  # orbax raises many types for truncated or foreign files
      why = (str(e).splitlines() or [''])[0][:200]
      raise UserError(
        f'checkpoint {self.directory / str(step)} is unreadable or partial '
        f'({type(e).__name__}: {why}). Nothing was deleted: move that directory aside to resume '
        f'from an earlier checkpoint, or use a new --workdir'
      ) from None
    return out['state'], out['meta']

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def _source(workdir: str):
  """A read-only manager of another run's checkpoints and its latest step; UserError if none."""
  directory = Path(workdir).absolute() / 'checkpoints'
  if not directory.is_dir():
    raise UserError(f'init_from={workdir}: no checkpoints directory {directory}')
  # Not read_only=True: orbax then logs two warnings; a manager that never saves writes nothing.
  manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(create=False))
  step = manager.latest_step()
  if step is None:
    raise UserError(f'init_from={workdir}: no complete checkpoint in {directory}')
  return manager, step


def check_source(workdir: str) -> None:
  """Fails fast, before any data is loaded, when `workdir` holds no checkpoint to start from."""
  _source(workdir)[0].close()


def _path_name(path) -> str:
  # Orbax restores without a target as nested dicts keyed by the names the saved tree had
  # (dict keys, attribute names, sequence indices), so paths are compared as those names.
  return jax.tree_util.keystr(path, simple=True, separator='/')


def restore_parts(workdir: str, keys: list[str] | None, abstract_method: dict) -> tuple[dict, int]:
  """(entries `keys` (None: all) of the method state in the latest checkpoint of another run,
  shaped and placed as this run's `abstract_method` says; that checkpoint's step). A different
  model is a UserError."""
  manager, step = _source(workdir)
  # Read onto this run's devices, whatever devices the other run had.
  like = jax.tree.leaves(abstract_method)[0].sharding
  try:
    saved = manager.restore(
      step, args=ocp.args.Composite(state=ocp.args.StandardRestore(fallback_sharding=like))
    )
  except Exception as e:  # orbax raises many types for truncated or foreign files
    why = (str(e).splitlines() or [''])[0][:200]
    raise UserError(
      f'init_from={workdir}: checkpoint {step} could not be read ({type(e).__name__}: {why})'
    ) from None
  finally:
    manager.close()
  saved = saved['state']['method']
  keys = list(abstract_method) if keys is None else keys
  out = {}
  for key in keys:
    if key not in abstract_method:
      raise UserError(
        f'init_keys: this method state has no {key!r} (it has {", ".join(abstract_method)})'
      )
    if key not in saved:
      raise UserError(f'init_from={workdir}: its method state has no {key!r}')
    have = {_path_name(p): v for p, v in jax.tree_util.tree_flatten_with_path(saved[key])[0]}
    want, tree = jax.tree_util.tree_flatten_with_path(abstract_method[key])
    extra = sorted(set(have) - {_path_name(p) for p, _ in want})
    if extra:
      raise UserError(
        f'init_from={workdir}: its checkpoint {step} has {key}/{extra[0]}, this run has not '
        f'(another model?)'
      )
    leaves = []
    for path, like in want:
      value = have.get(_path_name(path))
      if value is None or value.shape != like.shape or value.dtype != like.dtype:
        there = 'missing' if value is None else f'{value.dtype}{list(value.shape)}'
        raise UserError(
          f'init_from={workdir}: {key}/{_path_name(path)} is {there} in its checkpoint {step} '
          f'but {like.dtype}{list(like.shape)} in this run (another model?)'
        )
      leaves.append(jax.device_put(np.asarray(value), like.sharding))
    out[key] = jax.tree.unflatten(tree, leaves)
  return out, step
