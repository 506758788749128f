"""Runs under faults: a stop signal (preemption), and a workdir that is a file, is not writable
or fills up. Each ends in one line, and what was written before stays usable."""

import errno
import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from jaxssl import rundir, train
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


def _start_pair(workdir, port):
  """Two processes x 1 CPU device of the same run, as a user starts them on one machine."""
  env = dict(os.environ)
  flags = [f for f in env.get('XLA_FLAGS', '').split() if 'device_count' not in f]
  env['XLA_FLAGS'] = ' '.join([*flags, '--xla_force_host_platform_device_count=1'])
  args = ['--config.num_steps=100000', '--config.checkpoint_every=100000', '--config.log_every=5',
          '--config.eval_every=100000', '--config.batch_size=32', '--num_processes=2',
          f'--coordinator_address=localhost:{port}', '--distributed_timeout=60']  # fmt: skip
  return [
    helpers.start_cli_train(f'{CONFIG}:quick', workdir, *args, f'--process_id={i}', env=env)
    for i in range(2)
  ]


@pytest.mark.slow  # four fresh interpreters that import JAX and TensorFlow and compile
def test_sigterm_to_one_of_two_processes_stops_both_at_the_same_step(tmp_path):
  # A preemption notice reaching one host only (here process 1, which writes nothing): both
  # processes stop after the same step, that step is checkpointed once, and the same two
  # commands resume after it.
  with socket.socket() as sock:
    sock.bind(('localhost', 0))
    port = sock.getsockname()[1]
  p0, p1 = _start_pair(tmp_path, port)
  code1, err1 = _signal_after(p1, tmp_path, 5, signal.SIGTERM)
  _, err0 = p0.communicate(timeout=300)
  assert code1 == p0.returncode == Preempted.EXIT_CODE, (err0[-2000:], err1[-2000:])
  lines = [line for line in err0.splitlines() if line.startswith('jaxssl:')]
  assert len(lines) == 1 and 'stopped after step' in lines[0], err0[-2000:]
  stopped = int(lines[0].split('after step ')[1].split()[0])
  assert stopped % 5 == 0, 'processes agree at log steps'
  ckpts = Checkpoints(str(tmp_path), keep=3)
  assert ckpts.latest_step() == stopped
  ckpts.close()
  assert max(_steps(tmp_path)) == stopped
  p0, p1 = _start_pair(tmp_path, port)
  code0, err0 = _signal_after(p0, tmp_path, stopped + 5, signal.SIGTERM)
  _, err1 = p1.communicate(timeout=300)
  assert code0 == p1.returncode == Preempted.EXIT_CODE, (err0[-2000:], err1[-2000:])
  steps = _steps(tmp_path)
  assert steps == list(range(5, max(steps) + 1, 5)), 'no row repeated or skipped across the stop'


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

  monkeypatch.setattr(rundir, 'write_text', denied)
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
