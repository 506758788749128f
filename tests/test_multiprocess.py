"""Two CPU processes (JAX's multi-process runtime over gloo) compute what one process does: same
parameters and the same test errors as 1 process x 2 devices and 1 process x 1 device, results
and metrics written once, and a checkpoint of the 2-process run resumes in 1 process."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxssl.cli import main

ROOT = Path(__file__).parents[1]


def _port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _start(method, workdir, out, devices, num_processes=1, process_id=0, port=0):
  env = dict(os.environ)
  flags = [f for f in env.get('XLA_FLAGS', '').split() if 'device_count' not in f]
  env['XLA_FLAGS'] = ' '.join([*flags, f'--xla_force_host_platform_device_count={devices}'])
  cmd = [sys.executable, '-m', 'tests.multiprocess_worker', method, str(workdir), str(out)]
  cmd += [str(num_processes), str(process_id), str(port)]
  return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait(*procs):
  for p in procs:
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err.decode()[-3000:]


def _load(path):
  data = np.load(path)
  leaves = [data[f'arr_{i}'] for i in range(len(data.files) - 2)]
  return leaves, int(data['errors']), int(data['devices'])


def _assert_same(a, b):
  (la, ea, _), (lb, eb, _) = a, b
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5)
  assert ea == eb


CONFIG = ROOT / 'experiments' / 'configs' / 'mnist_improved_gan.py'


@pytest.mark.parametrize(
  'flags, message',
  [
    (['--num_processes=2', '--process_id=2', '--coordinator_address=localhost:1'], 'out of range'),
    (['--num_processes=2', '--process_id=0'], 'missing --coordinator_address'),
    (['--num_processes=2', '--process_id=0', '--coordinator_address=nohost'], 'HOST:PORT'),
  ],
)
def test_inconsistent_process_flags_are_one_line_errors(capsys, tmp_path, flags, message):
  with pytest.raises(SystemExit) as exit_info:
    main(['jaxssl', 'train', f'--config={CONFIG}:quick', f'--workdir={tmp_path}', *flags])
  err = capsys.readouterr().err
  assert exit_info.value.code == 1 and err.count('\n') == 1 and message in err, err
  assert not any(tmp_path.iterdir()), 'nothing written before the check'


def test_unreachable_coordinator_fails_within_the_timeout(tmp_path):
  # Process 1 of 2, a coordinator nobody runs, 2 s instead of the default 300.
  cmd = [sys.executable, '-m', 'jaxssl', 'train', f'--config={CONFIG}:quick',
         f'--workdir={tmp_path}', '--num_processes=2', '--process_id=1',
         f'--coordinator_address=localhost:{_port()}', '--distributed_timeout=2']  # fmt: skip
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert 'could not reach the coordinator at localhost:' in proc.stderr, proc.stderr[-2000:]
  assert 'within 2 s' in proc.stderr and proc.stderr.count('\n') == 1, proc.stderr[-2000:]


def test_loading_configs_and_methods_leaves_jax_uninitialized():
  # jax.distributed.initialize() must come before JAX touches a backend; the CLI loads the config
  # (and with it the method modules) first, so no module may create arrays at import.
  code = (
    'from jaxssl import cli, methods\n'
    'for m in methods.available(): methods.get(m)\n'
    f"cli.load_config('{ROOT}/experiments/configs/fixmatch_reference.py:cifar10,40,cta', [])\n"
    'from jax._src import xla_bridge\n'
    'assert not xla_bridge.backends_are_initialized()\n'
  )
  proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.slow  # ~6 CPU-minutes: eight fresh interpreters, each importing JAX and TensorFlow
@pytest.mark.parametrize('method', ['fixmatch', 'improved_gan'])
def test_two_processes_compute_what_one_does(tmp_path, method):
  port = _port()
  runs = {
    'one': _start(method, tmp_path / 'one', tmp_path / 'one.npz', devices=1),
    'two_devices': _start(method, tmp_path / 'two_devices', tmp_path / 'two_devices.npz', 2),
    'p0': _start(method, tmp_path / 'procs', tmp_path / 'procs.npz', 1, 2, 0, port),
    'p1': _start(method, tmp_path / 'procs', tmp_path / 'unused.npz', 1, 2, 1, port),
  }
  _wait(*runs.values())
  one, two, procs = (_load(tmp_path / f'{n}.npz') for n in ('one', 'two_devices', 'procs'))
  assert (one[2], two[2], procs[2]) == (1, 2, 2)
  assert not (tmp_path / 'unused.npz').exists(), 'process 1 must not write results'
  _assert_same(one, two)
  _assert_same(one, procs)
  rows = [
    json.loads(r)['step'] for r in (tmp_path / 'procs' / 'metrics.jsonl').read_text().splitlines()
  ]
  assert rows == [1, 2, 3], 'each step logged once, by process 0'
  results = json.loads((tmp_path / 'procs' / 'results.json').read_text())
  assert results['device_count'] == 2 and results['test_examples'] == 500
  if method == 'fixmatch':
    # The 2-process run's checkpoint at step 2 resumes in one process on one device.
    resumed = tmp_path / 'resumed'
    shutil.copytree(tmp_path / 'procs', resumed)
    shutil.rmtree(resumed / 'checkpoints' / '3')
    (resumed / 'results.json').unlink()
    _wait(_start(method, resumed, tmp_path / 'resumed.npz', devices=1))
    _assert_same(one, _load(tmp_path / 'resumed.npz'))
