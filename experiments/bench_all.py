"""Benchmarks every method's reference config on the present device, float32 and bfloat16, and
writes a Markdown table (step time, views/s, FLOPs, achieved FLOP/s, MFU, compile time, peak
memory, the backbone's share of the step): what to run first on a new GPU or TPU.

  python experiments/bench_all.py --out=bench_all.md
  python experiments/bench_all.py --suite=mnist --methods=fixmatch,simmatch --steps=10

Suites (synthetic data shaped like the dataset: nothing is downloaded):
- cifar10 (default): the CIFAR-10 40-label recipes, WRN-28-2, B = 64: fixmatch_reference.py for
  FixMatch, usb_reference.py for its successors, SimMatch and ReMixMatch; the older classifier
  methods with FixMatch's batch and backbone and their own μ and knobs.
- mnist: the few-label table's configs (mnist_ssl.py:<method>,100), the CPU unit of work.
The generative methods (improved_gan, ladder, vae_m2) bench their MNIST configs in both suites,
in float32 only (bfloat16 is for the conv backbones).
"""

import json
import re
import subprocess
import sys
from pathlib import Path

from absl import app, flags

sys.path.insert(0, str(Path(__file__).parents[1]))

from experiments.configs import (  # noqa: E402
  fixmatch_reference,
  mnist_improved_gan,
  mnist_ladder,
  mnist_ssl,
  mnist_vae_m2,
  usb_reference,
)
from jaxssl import bench, methods  # noqa: E402
from jaxssl.config import base_config  # noqa: E402

flags.DEFINE_enum('suite', 'cifar10', ['cifar10', 'mnist'], 'Which reference configs.')
flags.DEFINE_list('methods', ['all'], "Methods, or 'all'.")
flags.DEFINE_list('dtypes', ['float32', 'bfloat16'], 'compute_dtype values to bench.')
flags.DEFINE_integer('steps', 50, 'Timed steps per config.')
flags.DEFINE_integer('warmup', 5, 'Untimed steps first.')
flags.DEFINE_string('out', 'bench_all.md', 'The Markdown table; a .json of the rows beside it.')
flags.DEFINE_string(
  'one', None, 'METHOD:DTYPE: bench that config alone and print its row (internal).'
)
FLAGS = flags.FLAGS

GENERATIVE = {
  'improved_gan': (mnist_improved_gan, 'quick'),
  'ladder': (mnist_ladder, '100'),
  'vae_m2': (mnist_vae_m2, 'm1m2_cpu'),
}


def reference_config(method: str, suite: str):
  """(config, its name) of `method` in `suite`."""
  if method in GENERATIVE:
    module, arg = GENERATIVE[method]
    return module.get_config(arg), f'{module.__name__.rsplit(".", 1)[-1]}.py:{arg}'
  if suite == 'mnist':
    return mnist_ssl.get_config(f'{method},100'), f'mnist_ssl.py:{method},100'
  if method == 'fixmatch':
    return fixmatch_reference.get_config('cifar10,40'), 'fixmatch_reference.py:cifar10,40'
  if method in usb_reference.KNOBS:
    return usb_reference.get_config(f'{method},cifar10,40'), f'usb_reference.py:{method},cifar10,40'
  recipe = fixmatch_reference.get_config('cifar10,40')
  config = base_config(method)
  for key in ('dataset', 'labels_per_class', 'backbone', 'batch_size', 'num_steps', 'flip'):
    config[key] = recipe[key]
  return config, f'{method} with fixmatch_reference.py:cifar10,40 data and backbone'


COLUMNS = (
  ('method', 'method'),
  ('dtype', 'compute_dtype'),
  ('step ms', 'step_ms_median'),
  ('views/s', 'views_per_s'),
  ('GFLOP/step', 'gflops_per_step'),
  ('TFLOP/s', 'achieved_tflops'),
  ('MFU', 'mfu'),
  ('backbone share', 'backbone_fraction'),
  ('compile s', 'compile_s'),
  ('peak MiB', 'peak_memory_mib'),
)


def table(rows: list[dict]) -> str:
  head = '| ' + ' | '.join(name for name, _ in COLUMNS) + ' |'
  lines = [head, '|' + '---|' * len(COLUMNS)]
  for r in rows:
    if 'error' in r:
      lines.append(f'| {r["method"]} | {r["compute_dtype"]} | failed: {r["error"]} |')
      continue
    cells = ['—' if r.get(key) is None else str(r[key]) for _, key in COLUMNS]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def bench_one(method: str, dtype: str) -> dict:
  config, source = reference_config(method, FLAGS.suite)
  if 'compute_dtype' in config:
    config.compute_dtype = dtype
  return {**bench.run_bench(config, steps=FLAGS.steps, warmup=FLAGS.warmup), 'config': source}


def bench_in_subprocess(method: str, dtype: str, source: str) -> dict:
  """One config in a fresh interpreter: its peak memory (device peak or host max RSS) and its
  compile time are its own, not the running maximum and the warm caches of the configs before."""
  cmd = [sys.executable, __file__, f'--one={method}:{dtype}', f'--suite={FLAGS.suite}',
         f'--steps={FLAGS.steps}', f'--warmup={FLAGS.warmup}']  # fmt: skip
  proc = subprocess.run(cmd, capture_output=True, text=True)
  rows = [line[4:] for line in proc.stdout.splitlines() if line.startswith('ROW ')]
  if proc.returncode == 0 and rows:
    return json.loads(rows[-1])
  lines = proc.stderr.strip().splitlines()
  errors = [line for line in lines if re.match(r'\w*(Error|Exception)\b', line)]
  why = (errors or lines or [f'exit code {proc.returncode}'])[-1][:200]
  return {'method': method, 'compute_dtype': dtype, 'error': why, 'config': source}


def main(argv):
  del argv
  if FLAGS.one:
    print('ROW ' + json.dumps(bench_one(*FLAGS.one.split(':'))), flush=True)
    return
  names = methods.available() if FLAGS.methods == ['all'] else FLAGS.methods
  unknown = sorted(set(names) - set(methods.available()))
  if unknown:
    raise app.UsageError(f'unknown methods {unknown}; known: {", ".join(methods.available())}')
  rows = []
  for method in names:
    for dtype in FLAGS.dtypes:
      if method in GENERATIVE and dtype != 'float32':
        continue
      source = reference_config(method, FLAGS.suite)[1]
      print(f'{method} ({source}), {dtype} ...', flush=True)
      rows.append(bench_in_subprocess(method, dtype, source))
      print(table(rows[-1:]).splitlines()[-1], flush=True)
  first = next((r for r in rows if 'device' in r), {})
  header = (
    f'Device: {first.get("device_count", "?")} x {first.get("device", "?")} '
    f'({first.get("platform", "?")}, jax {first.get("jax", "?")}); synthetic data; median of '
    f'{FLAGS.steps} steps after {FLAGS.warmup}; suite {FLAGS.suite}.\n\n'
  )
  out = Path(FLAGS.out)
  out.write_text(header + table(rows) + '\n')
  out.with_suffix('.json').write_text(json.dumps(rows, indent=2) + '\n')
  print(f'wrote {out} and {out.with_suffix(".json")}')


if __name__ == '__main__':
  app.run(main)
