"""Runs under faults: a stop signal (preemption), and a workdir that is a file, is not writable
or fills up. Each ends in one line, and what was written before stays usable."""

import errno
import json
import signal
import time
from pathlib import Path

import pytest

from jaxssl import train
from jaxssl.checkpoint import Checkpoints
from jaxssl.errors import Preempted, UserError
from jaxssl.train import train_and_evaluate
from tests import helpers

CONFIG = Path(__file__).parents[1] / 'experiments' / 'configs' / 'mnist_supervised.py'


def _start(workdir):
  # Long enough never to finish here; the only checkpoint is the one the signal asks for.
  args = ['--config.num_steps=100000', '--config.checkpoint_every=100000', '--config.log_every=1',
          '--config.eval_every=100000', '--config.batch_size=32']  # fmt: skip
  return helpers.start_cli_train(f'{CONFIG}:quick', workdir, *args)


def _steps(workdir):
  path = workdir / 'metrics.jsonl'
  if not path.exists():
    return []
  return [json.loads(r)['step'] for r in path.read_text().splitlines() if r.strip()]


def _signal_after(proc, workdir, min_step, sig):
  deadline = time.time() + 300
  while (max(_steps(workdir), default=0) < min_step) and proc.poll() is None:
    assert time.time() < deadline, 'the run never reached its first rows'
    time.sleep(0.1)
  proc.send_signal(sig)
  _, err = proc.communicate(timeout=300)
  return proc.returncode, err


@pytest.mark.slow  # two fresh interpreters that import JAX and TensorFlow and compile
def test_sigterm_checkpoints_the_finished_step_and_the_same_command_resumes(tmp_path):
  code, err = _signal_after(_start(tmp_path), tmp_path, 3, signal.SIGTERM)
  lines = [line for line in err.splitlines() if line.startswith('jaxssl:')]
  assert code == Preempted.EXIT_CODE, err[-2000:]
  assert len(lines) == 1 and 'SIGTERM received: stopped after step' in lines[0], err[-2000:]
  stopped = int(lines[0].split('after step ')[1].split()[0])
  ckpts = Checkpoints(str(tmp_path), keep=3)
  assert ckpts.latest_step() == stopped  # checkpoint_every is 100,000: this is the signal's
  ckpts.close()
  assert max(_steps(tmp_path)) == stopped
  # The same command resumes after that step (exact resume from any checkpoint is tested in
  # test_train.py); Ctrl-C stops it the same way.
  code, err = _signal_after(_start(tmp_path), tmp_path, stopped + 2, signal.SIGINT)
  assert code == Preempted.EXIT_CODE and 'SIGINT received' in err, err[-2000:]
  steps = _steps(tmp_path)
  assert steps == list(range(1, max(steps) + 1)), 'no step repeated or skipped across the stop'


def _train(config, workdir):
  return train_and_evaluate(config, str(workdir), helpers.one_device(), helpers.small())


def test_workdir_that_is_a_file(tmp_path):
  (tmp_path / 'run').write_text('not a directory')
  with pytest.raises(UserError, match='is a file, not a directory'):
    _train(helpers.tiny_config('supervised'), tmp_path / 'run')


def test_unwritable_workdir_fails_before_compute(tmp_path, monkeypatch):
  # Injected: the suite may run as root, which writes anywhere.
  def denied(path, text):
    raise PermissionError(errno.EACCES, 'Permission denied', str(path))

  monkeypatch.setattr(train, '_write_text', denied)
  monkeypatch.setattr(train, 'build', lambda *a: pytest.fail('compute started'))
  with pytest.raises(UserError, match='is not writable'):
    _train(helpers.tiny_config('supervised'), tmp_path / 'run')


def test_full_disk_keeps_the_last_checkpoint_and_resumes(tmp_path, monkeypatch):
  config = helpers.tiny_config('supervised', checkpoint_every=1, num_steps=3)
  save = Checkpoints.save

  def fills_up_at_step_2(self, step, state, meta):
    if step == 2:
      raise OSError(errno.ENOSPC, 'No space left on device')
    save(self, step, state, meta)

  monkeypatch.setattr(Checkpoints, 'save', fills_up_at_step_2)
  with pytest.raises(UserError, match=r'no space left .* last complete checkpoint \(step 1\)'):
    _train(config, tmp_path)
  monkeypatch.undo()  # space freed: the same run resumes from step 1 and finishes
  results = _train(config, tmp_path)
  assert results['steps'] == 3 and (tmp_path / 'results.json').exists()
