"""Orbax checkpoints of everything an exact resume needs: the train state pytree (params,
optimizer states, averaged copies, step, root key) and JSON meta (data-stream position, timers).
"""

from pathlib import Path

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
