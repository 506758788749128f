"""Two CPU processes (JAX's multi-process runtime over gloo) compute what one process does: same
parameters and the same test errors as 1 process x 2 devices and 1 process x 1 device, results
and metrics written once, and checkpoints resume across the two topologies both ways."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxssl import parallel
from jaxssl.cli import main
from tests import helpers
from tests.multiprocess_worker import final_state

ROOT = Path(__file__).parents[1]


def _port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


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


def _save_arrays(ds, path):
  np.savez(path, xtr=ds.train_images, ytr=ds.train_labels, xte=ds.test_images, yte=ds.test_labels)


def _start_processes(data, jobs, n=2):
  """n worker processes x 1 CPU device running `jobs` ([method, workdir, out, wait]) in order."""
  port, env = _port(), dict(os.environ)
  flags = [f for f in env.get('XLA_FLAGS', '').split() if 'device_count' not in f]
  env['XLA_FLAGS'] = ' '.join([*flags, '--xla_force_host_platform_device_count=1'])
  jobs = json.dumps([[m, str(w), str(o), wait] for m, w, o, wait in jobs])
  cmd = [sys.executable, '-m', 'tests.multiprocess_worker', str(data), str(n)]
  # stderr to files: a pipe nobody reads while this process trains would block a chatty worker.
  logs = [data.with_name(f'worker{i}.log') for i in range(n)]
  procs = []
  for i, log in enumerate(logs):
    with log.open('w') as f:
      procs.append(subprocess.Popen([*cmd, str(i), str(port), jobs], cwd=ROOT, env=env, stderr=f))
  return procs, logs


def _interrupted_copy(src, dst):
  """The run in `src` as if it had died after its checkpoint at step 2 (of 3), appearing at `dst`
  at once (a waiting worker starts when it exists)."""
  tmp = dst.with_name(dst.name + '.partial')
  shutil.copytree(src, tmp)
  shutil.rmtree(tmp / 'checkpoints' / '3')
  (tmp / 'results.json').unlink()
  tmp.rename(dst)


def _in_process(method, workdir, mesh):
  leaves, errors = final_state(method, workdir, helpers.small(), mesh)
  return leaves, errors, mesh.size


@pytest.mark.parametrize(
  'method',
  [
    'improved_gan',  # two optimizers, the Polyak average; an MLP: quick to compile
    pytest.param('fixmatch', marks=pytest.mark.slow),  # batch norm over the global batch
  ],
)
def test_two_processes_compute_what_one_does(tmp_path, method):
  # Two processes x 1 device (the workers start as `jaxssl train` starts them) against this
  # process on 1 and on 2 of its devices; checkpoints cross the topologies both ways. Each worker
  # pays its interpreter start once for its two runs and reads the arrays from an .npz; they
  # start first, so their imports and compiles overlap this process's runs.
  data = tmp_path / 'data.npz'
  _save_arrays(helpers.small(), data)
  jobs = [(method, tmp_path / 'procs', tmp_path / 'procs.npz', False)]
  jobs.append((method, tmp_path / 'one_then_procs', tmp_path / 'one_then_procs.npz', True))
  workers, logs = _start_processes(data, jobs)
  try:
    one = _in_process(method, tmp_path / 'one', helpers.one_device())
    _interrupted_copy(tmp_path / 'one', tmp_path / 'one_then_procs')  # the workers' second job
    two = _in_process(method, tmp_path / 'two', parallel.make_mesh(jax.devices()[:2]))
    for p, log in zip(workers, logs):
      p.wait(timeout=600)
      assert p.returncode == 0, log.read_text()[-3000:]
  finally:
    for p in workers:
      p.kill()
  procs = _load(tmp_path / 'procs.npz')
  assert (one[2], two[2], procs[2]) == (1, 2, 2)
  _assert_same(one, two)
  _assert_same(one, procs)
  log = (tmp_path / 'procs' / 'metrics.jsonl').read_text().splitlines()
  assert [json.loads(r)['step'] for r in log] == [1, 2, 3], 'each step logged once'
  results = json.loads((tmp_path / 'procs' / 'results.json').read_text())
  assert results['device_count'] == 2 and results['test_examples'] == 500
  # 1 process -> 2: the workers finished the 1-device run's step-2 checkpoint.
  _assert_same(procs, _load(tmp_path / 'one_then_procs.npz'))
  # 2 processes -> 1: this process finishes the workers' step-2 checkpoint on one device.
  _interrupted_copy(tmp_path / 'procs', tmp_path / 'procs_then_one')
  _assert_same(one, _in_process(method, tmp_path / 'procs_then_one', helpers.one_device()))


@pytest.mark.slow  # two fresh interpreters that import JAX and compile the GAN step
def test_bench_across_two_processes_reports_once(tmp_path):
  # Each process times the same global steps; process 0 alone prints and writes the JSON (the
  # other's devices have no memory statistics it could read: it crashed on them before).
  port, env = _port(), dict(os.environ)
  flags = [f for f in env.get('XLA_FLAGS', '').split() if 'device_count' not in f]
  env['XLA_FLAGS'] = ' '.join([*flags, '--xla_force_host_platform_device_count=1'])
  out = tmp_path / 'bench.json'
  cmd = [sys.executable, '-m', 'jaxssl', 'bench', f'--config={CONFIG}:quick', '--steps=2',
         '--warmup=0', f'--out={out}', f'--coordinator_address=localhost:{port}',
         '--num_processes=2', '--distributed_timeout=60']  # fmt: skip
  procs = [
    subprocess.Popen(
      [*cmd, f'--process_id={i}'],
      cwd=ROOT,
      env=env,
      text=True,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
    )  # fmt: skip
    for i in range(2)
  ]
  outputs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-3000:]
  result = json.loads(out.read_text())
  assert (result['process_count'], result['device_count'], result['process_index']) == (2, 2, 0)
  assert result['step_ms_median'] > 0 and result['batch_labeled'] == 100
  assert f'wrote {out}' in outputs[0][0], outputs[0][0]
  assert 'wrote' not in outputs[1][0] and 'step_ms_median' not in outputs[1][0], outputs[1][0]
