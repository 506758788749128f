"""Benchmarks one config's step on 1 process x 1 device, 1 process x N devices and N processes x 1
device, the same global batch each time, and writes a Markdown table: what the multi-process
runtime's collectives cost against in-process ones.

  python experiments/bench_processes.py --config=experiments/configs/mnist_improved_gan.py:quick
  python experiments/bench_processes.py --config=experiments/configs/mnist_ssl.py:fixmatch,100 \
    --devices=2 --steps=30 --out=bench_fixmatch_processes.md

On CPU the devices are XLA's host-platform devices (N of them in one process, or one per
process, collectives over gloo); on GPUs each process sees one GPU (CUDA_VISIBLE_DEVICES). The
N-process and the 1-process x N-device runs compute the same per-device programs, so their step
times differ by how the gradients and batch statistics travel. All runs share the machine's cores:
run nothing else beside it.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from absl import app, flags

flags.DEFINE_string('config', None, 'Experiment config, as for `jaxssl bench`.', required=True)
flags.DEFINE_integer('devices', 2, 'N: devices of the multi-device runs.')
flags.DEFINE_integer('steps', 50, 'Timed steps per run.')
flags.DEFINE_integer('warmup', 5, 'Untimed steps first.')
flags.DEFINE_string('platform', 'cpu', 'cpu (host devices) or gpu (one GPU per process).')
flags.DEFINE_string('out', 'bench_processes.md', 'The Markdown table; a .json of the rows beside.')
FLAGS = flags.FLAGS

COLUMNS = [
  'topology',
  'step_ms_median',
  'step_ms_p90',
  'views_per_s',
  'compile_s',
  'peak_memory_mib',
]


def _port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _env(devices: int, first: int) -> dict:
  env = dict(os.environ)
  if FLAGS.platform == 'cpu':
    flags_ = [f for f in env.get('XLA_FLAGS', '').split() if 'device_count' not in f]
    env['XLA_FLAGS'] = ' '.join([*flags_, f'--xla_force_host_platform_device_count={devices}'])
  else:
    env['CUDA_VISIBLE_DEVICES'] = ','.join(str(first + i) for i in range(devices))
  return env


def bench(processes: int, devices: int, out: Path) -> dict:
  """`jaxssl bench` on `processes` processes of `devices` devices each; process 0's result."""
  cmd = [sys.executable, '-m', 'jaxssl', 'bench', f'--config={FLAGS.config}',
         f'--steps={FLAGS.steps}', f'--warmup={FLAGS.warmup}', f'--out={out}']  # fmt: skip
  if processes > 1:
    cmd += [f'--coordinator_address=localhost:{_port()}', f'--num_processes={processes}']
  procs = [
    subprocess.Popen(
      cmd + ([f'--process_id={i}'] if processes > 1 else []),
      env=_env(devices, i * devices),
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
    )
    for i in range(processes)
  ]
  errors = [p.communicate()[1] for p in procs]
  for p, err in zip(procs, errors):
    if p.returncode:
      raise SystemExit(f'bench on {processes} x {devices} failed:\n{err[-3000:]}')
  result = json.loads(out.read_text())
  plural = lambda k, word, end: f'{k} {word}{end if k > 1 else ""}'
  result['topology'] = f'{plural(processes, "process", "es")} x {plural(devices, "device", "s")}'
  return result


def main(argv):
  del argv
  n = FLAGS.devices
  with tempfile.TemporaryDirectory() as tmp:
    rows = [bench(p, d, Path(tmp) / f'{p}x{d}.json') for p, d in [(1, 1), (1, n), (n, 1)]]
  one, in_process, processes = rows
  lines = [
    f'`{FLAGS.config}`, global batch {one["batch_labeled"]} labeled / {one["batch_views"]} views, '
    f'{one["params"]:,} parameters ({4 * one["params"] / 2**20:.1f} MiB of float32 gradients '
    f'all-reduced a step), {one["device"]}, jax {one["jax"]}',
    '',
    '| ' + ' | '.join(COLUMNS) + ' |',
    '|' + '---|' * len(COLUMNS),
    *('| ' + ' | '.join(str(r.get(c)) for c in COLUMNS) + ' |' for r in rows),
    '',
    f'{n} processes against 1 process x {n} devices: '
    f'{processes["step_ms_median"] - in_process["step_ms_median"]:+.1f} ms a step '
    f'({processes["step_ms_median"] / in_process["step_ms_median"] - 1:+.1%}).',
  ]
  text = '\n'.join(lines) + '\n'
  print(text)
  Path(FLAGS.out).write_text(text)
  Path(FLAGS.out).with_suffix('.json').write_text(json.dumps(rows, indent=2) + '\n')


if __name__ == '__main__':
  app.run(main)
