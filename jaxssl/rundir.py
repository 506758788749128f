"""The run directory and the run's process: one config per workdir, files written whole or not at
all, one-line errors for a workdir that is a file, unwritable or full, and SIGTERM/SIGINT turned
into "finish the step, checkpoint it, exit"."""

import errno
import json
import signal
import threading
from pathlib import Path

import jax
import numpy as np

from jaxssl import config as config_lib
from jaxssl.errors import UserError


class StopSignal:
  """SIGTERM/SIGINT set a flag the loop reads after each step, so a preempted run finishes its
  step and checkpoints it; a second signal acts at once (the handlers before are restored)."""

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.name = None
    self._previous = {}

  def _handle(self, signum, frame):
    self.name = signal.Signals(signum).name
    self.restore()

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():  # signals reach the main thread
      self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
    return self

  def restore(self):
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    self._previous = {}

  def __exit__(self, *exc):
    self.restore()

  def agreed(self, at_log_step: bool) -> bool:
    """Whether to stop now. Processes agree at log steps only (one small collective there), so
    every process checkpoints the same step."""
    if jax.process_count() == 1:
      return self.name is not None
    if not at_log_step:
      return False
    from jax.experimental import multihost_utils

    flags = multihost_utils.process_allgather(np.array(self.name is not None))
    return bool(np.any(flags))


def error(workdir: Path, e: OSError) -> UserError:
  """The one-line error for an OSError met in the run directory."""
  if isinstance(e, FileExistsError) or (workdir.exists() and not workdir.is_dir()):
    return UserError(f'--workdir {workdir} is a file, not a directory')
  if isinstance(e, PermissionError):
    return UserError(f'--workdir {workdir} is not writable ({e.strerror})')
  if e.errno == errno.ENOSPC:
    return UserError(f'no space left on the device of --workdir {workdir}')
  return UserError(f'--workdir {workdir}: {e.strerror or e}')


def check_config(workdir: Path, config) -> None:
  """A workdir holds one run: resuming it with a config that computes something else is an error.
  Before its first checkpoint it holds nothing to resume, so a start that failed (a bad knob, a
  missing init_from) can be rerun there with the config corrected."""
  path = workdir / 'config.json'
  if path.exists() and has_checkpoint(workdir):
    try:
      old = config_lib.from_json(path.read_text())
    except (ValueError, UserError) as e:
      raise UserError(f'{path} is unreadable ({e}); use a new --workdir') from None
    diff = config_lib.differences(old, config)
    if diff:
      changes = ', '.join(f'{k}: {old.get(k)!r} -> {config.get(k)!r}' for k in diff)
      raise UserError(
        f'{workdir} holds a run with another config ({changes}); resume it with the '
        f'same config or use a new --workdir'
      )


def has_checkpoint(workdir: Path) -> bool:
  directory = workdir / 'checkpoints'
  return directory.is_dir() and any(p.name.isdigit() for p in directory.iterdir())


def write_text(path: Path, text: str) -> None:
  """Written whole or not at all: a full disk leaves the old file."""
  tmp = path.with_suffix('.tmp')
  tmp.write_text(text)
  tmp.replace(path)


def write_json(path: Path, obj) -> None:
  write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=list) + '\n')
