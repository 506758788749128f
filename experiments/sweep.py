"""A results table over methods, label counts and seeds, in one resumable command.

  python experiments/sweep.py --config=experiments/configs/mnist_ssl.py \
    --methods=fixmatch,uda --labels=10,40,100 --seeds=0,1,2 --workdir=runs/table \
    [--config.KEY=VALUE ...]

The config file takes `<method>,<labels>` (as experiments/configs/mnist_ssl.py does). Each cell
(method, labels, seed) trains into WORKDIR/<method>_<labels>/seed<S> with `--config.seed=S` and
the overrides, one cell after another; the seed draws the labeled split too. Re-running skips
finished cells and resumes unfinished ones from their checkpoints; a cell that fails (e.g. a NaN
loss) is recorded and the sweep goes on. The labeled-only baseline (`supervised`) is always run
beside the methods. Then WORKDIR gets:

- table.md, table.json: test error mean ± sd over seeds per (method, labels), beside the baseline,
  the pixel-space 1-nearest-neighbour error of the same labeled splits, and the published number
  where one exists (experiments/references.py);
- curves/<method>_<labels>.png: test error, mask rate and pseudo-label accuracy against step,
  one line per seed; summary.png: the table as a figure.

`--report_only` rewrites the table and figures from the cells present, without training.
"""

import functools
import json
import statistics
import sys
import time
from pathlib import Path

from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments import references  # noqa: E402

BASELINE = 'supervised'
CURVES = (  # (panel title, metric keys drawn in it)
  ('test error (EMA)', ('eval/test/error',)),
  ('mask rate', ('monitor/mask_rate',)),
  ('pseudo-label accuracy', ('monitor/pseudo_acc', 'monitor/masked_pseudo_acc')),
)

flags.DEFINE_string('config', None, 'Config file taking <method>,<labels>.')
flags.DEFINE_list('methods', ['all'], "Methods, or 'all' (the config's METHODS).")
flags.DEFINE_list('labels', ['10', '40', '100'], 'Label counts (all classes together).')
flags.DEFINE_list(
  'seeds', ['0', '1', '2'], 'Seeds; each draws its own labeled split unless the config fixes it.'
)
flags.DEFINE_string('workdir', None, 'Root directory of the cells.')
flags.DEFINE_bool('report_only', False, 'Write the table and figures without training.')
FLAGS = flags.FLAGS


def cell_dir(root: Path, method: str, labels: str, seed: str) -> Path:
  return root / f'{method}_{labels}' / f'seed{seed}'


def plan(config: str, methods, labels, seeds) -> list[tuple[str, str, str]]:
  """Cells in the order they run: seed by seed, so an interrupted sweep has whole tables."""
  if methods == ['all']:
    methods = list(_config_module(config).METHODS)
  if BASELINE not in methods:
    methods = [BASELINE, *methods]
  return [(m, n, s) for s in seeds for n in labels for m in methods]


def _config_module(config: str):
  import importlib.util

  path = config.split(':', 1)[0]
  spec = importlib.util.spec_from_file_location('sweep_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def run_cell(config: str, overrides: list[str], method: str, labels: str, seed: str, workdir):
  """Trains (or resumes) one cell; returns its results, or None if it failed (recorded)."""
  from jaxssl import cli, train
  from jaxssl.errors import UserError

  failed = workdir / 'failed.txt'
  try:
    cfg = cli.load_config(f'{config}:{method},{labels}', [f'--config.seed={seed}', *overrides])
    results = train.train_and_evaluate(cfg, str(workdir))
  except UserError as e:
    workdir.mkdir(parents=True, exist_ok=True)
    failed.write_text(f'{e}\n')
    print(f'  failed: {e}', file=sys.stderr)
    return None
  failed.unlink(missing_ok=True)
  return results


def nearest_neighbour_errors(train_x, train_y, test_x, test_y, chunk: int = 2000) -> int:
  """Test images that pixel-space 1-nearest-neighbour on (train_x, train_y) gets wrong."""
  import numpy as np

  train = train_x.reshape(len(train_x), -1).astype(np.float32) / 255
  errors = 0
  for start in range(0, len(test_x), chunk):
    test = test_x[start : start + chunk].reshape(-1, train.shape[1]).astype(np.float32) / 255
    dist = (train**2).sum(1)[None] - 2 * test @ train.T  # + |test|², the same in every row
    errors += int((train_y[dist.argmin(1)] != test_y[start : start + chunk]).sum())
  return errors


@functools.cache
def nearest_neighbour_error(
  dataset: str, labels_per_class: int, seed: int, recipe: str = 'per_class'
) -> float:
  """Test error of pixel 1-NN on the labeled split that (dataset, labels, seed, recipe) draws."""
  from jaxssl.data import datasets

  ds = datasets.load(dataset)
  idx = datasets.labeled_subset(ds, labels_per_class, seed, recipe)
  wrong = nearest_neighbour_errors(
    ds.train_images[idx], ds.train_labels[idx], ds.test_images, ds.test_labels
  )
  return wrong / len(ds.test_labels)


def _mean_sd(values):
  values = [v for v in values if v is not None]
  if not values:
    return None, None
  return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _fmt(mean, sd, digits=2):
  if mean is None:
    return '—'
  return f'{mean:.{digits}f}' + ('' if sd is None else f' ± {sd:.{digits}f}')


def collect(root: Path, cells) -> list[dict]:
  """One row per (method, labels): per-seed results and their mean ± sd, in %."""
  rows = {}
  for method, labels, seed in cells:
    row = rows.setdefault(
      (method, labels),
      {'method': method, 'labels': int(labels), 'seeds': [], 'missing': [], 'failed': []},
    )
    workdir = cell_dir(root, method, labels, seed)
    path = workdir / 'results.json'
    if not path.exists():
      row['failed' if (workdir / 'failed.txt').exists() else 'missing'].append(int(seed))
      continue
    r = json.loads(path.read_text())
    config = json.loads((workdir / 'config.json').read_text())
    row['dataset'] = r['dataset']
    row['seeds'].append(
      {
        'seed': r['seed'],
        'split_seed': r.get('split_seed', r['seed']),
        'split_recipe': r.get('split_recipe', 'per_class'),
        'error': 100 * r['test_error'],
        'raw_error': 100 * r['test_raw_error'] if 'test_raw_error' in r else None,
        # FixMatch's protocol: the median of the last 20 evaluations (older runs: absent)
        'median_last': 100 * r['test_error_median_last'] if 'test_error_median_last' in r else None,
        'steps': r['steps'],
        'minutes': r['wall_seconds'] / 60,
        'device': r.get('device', '?'),
        'labels_per_class': config['labels_per_class'],
      }
    )
  out = list(rows.values())
  for row in out:
    seeds = row['seeds']
    row['error_mean'], row['error_sd'] = _mean_sd([s['error'] for s in seeds])
    row['raw_mean'], row['raw_sd'] = _mean_sd([s['raw_error'] for s in seeds])
    row['median_last_mean'], row['median_last_sd'] = _mean_sd([s['median_last'] for s in seeds])
    row['minutes_mean'] = _mean_sd([s['minutes'] for s in seeds])[0]
    # Cells may run on different machines (a table finished on a GPU): wall time is per device.
    row['minutes_by_device'] = {
      d: _mean_sd([s['minutes'] for s in seeds if s['device'] == d])[0]
      for d in sorted({s['device'] for s in seeds})
    }
    row['steps'] = sorted({s['steps'] for s in seeds})
    if seeds:
      nn = [
        100
        * nearest_neighbour_error(
          row['dataset'], s['labels_per_class'], s['split_seed'], s['split_recipe']
        )
        for s in seeds
      ]
      row['nn_mean'], row['nn_sd'] = _mean_sd(nn)
      row['paper'] = references.lookup(row['dataset'], row['method'], row['labels'])
  return out


def _splits(rows: list[dict]) -> str:
  """How the cells' labeled splits were drawn, in words."""
  seeds = [s for r in rows for s in r['seeds']]
  drawn = {(s['split_seed'], s['split_recipe']) for s in seeds}
  if all(s['split_seed'] == s['seed'] and s['split_recipe'] == 'per_class' for s in seeds):
    return 'each seed its own labeled split'
  return 'labeled splits ' + ', '.join(f'{recipe} (split_seed {k})' for k, recipe in sorted(drawn))


def markdown(rows: list[dict], command: str) -> str:
  baseline = {r['labels']: r for r in rows if r['method'] == BASELINE}
  lines = [
    '# Few-label table',
    '',
    f'`{command}`',
    '',
    'Test error in % (EMA model, all test images), mean ± sd over seeds; '
    + _splits(rows)
    + '. `supervised`: the same network and schedule on the labeled images only.',
    '1-NN: pixel-space nearest neighbour on the same labeled splits. Median of last: the median',
    "of each run's last (up to 20) evaluations, the FixMatch and MixMatch papers' protocol.",
    '',
    '| labels | method | seeds | test error | median of last | raw model | vs supervised | 1-NN '
    '| paper | steps | min/cell (device) |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ]
  for row in sorted(rows, key=lambda r: (r['labels'], r['method'] != BASELINE)):
    base = baseline.get(row['labels'])
    delta = '—'
    if row['method'] != BASELINE and base and base['error_mean'] is not None and row['seeds']:
      delta = f'{row["error_mean"] - base["error_mean"]:+.2f}'
    seeds = f'{len(row["seeds"])}'
    if row['missing'] or row['failed']:
      seeds += f' (missing {row["missing"]})' if row['missing'] else ''
      seeds += f' (failed {row["failed"]})' if row['failed'] else ''
    paper = row.get('paper')
    lines.append(
      '| '
      + ' | '.join(
        [
          str(row['labels']),
          row['method'],
          seeds,
          _fmt(row['error_mean'], row['error_sd']),
          _fmt(row.get('median_last_mean'), row.get('median_last_sd')),
          _fmt(row['raw_mean'], row['raw_sd']),
          delta,
          _fmt(row.get('nn_mean'), row.get('nn_sd'), 1),
          paper['text'] if paper else '—',
          ','.join(map(str, row['steps'])) or '—',
          ', '.join(f'{m:.1f} ({d})' for d, m in row['minutes_by_device'].items()) or '—',
        ]
      )
      + ' |'
    )
  lines += ['', 'Per seed:', '']
  for row in sorted(rows, key=lambda r: (r['labels'], r['method'])):
    per_seed = ', '.join(
      f'seed {s["seed"]}: {s["error"]:.2f} ({s["device"]})' for s in row['seeds']
    )
    lines.append(f'- {row["method"]}, {row["labels"]} labels: {per_seed or "none yet"}')
  return '\n'.join(lines) + '\n'


def _read_metrics(workdir: Path) -> list[dict]:
  path = workdir / 'metrics.jsonl'
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curves(root: Path, cells, out: Path, groups=None) -> list[Path]:
  """One PNG per (method, labels), or per one of `groups` if given: a panel per entry of CURVES,
  a line per seed."""
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  out.mkdir(parents=True, exist_ok=True)
  seeds_of = {}
  for method, labels, seed in cells:
    seeds_of.setdefault((method, labels), []).append(seed)
  written = []
  for (method, labels), seeds in seeds_of.items():
    if groups is not None and (method, labels) not in groups:
      continue
    fig, axes = plt.subplots(1, len(CURVES), figsize=(4.2 * len(CURVES), 3.2))
    drawn = False
    for ax, (title, keys) in zip(axes, CURVES):
      for i, seed in enumerate(seeds):
        rows = _read_metrics(cell_dir(root, method, labels, seed))
        for key, style in zip(keys, ('-', '--')):
          points = [(r['step'], r[key]) for r in rows if key in r]
          if points:
            drawn = True
            ax.plot(*zip(*points), style, color=f'C{i}', label=f'seed {seed} {key.split("/")[-1]}')
      ax.set_title(title)
      ax.set_xlabel('step')
      if title.startswith('test error'):
        ax.set_yscale('log')
      if ax.lines:
        ax.legend(fontsize=6)
    if drawn:
      fig.suptitle(f'{method}, {labels} labels')
      fig.tight_layout()
      path = out / f'{method}_{labels}.png'
      fig.savefig(path, dpi=90)
      written.append(path)
    plt.close(fig)
  return written


def plot_summary(rows: list[dict], path: Path) -> None:
  """A panel per label count: mean ± sd error per method, the 1-NN and baseline as lines."""
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  label_counts = sorted({r['labels'] for r in rows})
  fig, axes = plt.subplots(
    1, len(label_counts), figsize=(5 * len(label_counts), 3.6), squeeze=False
  )
  for ax, n in zip(axes[0], label_counts):
    here = [r for r in rows if r['labels'] == n and r['error_mean'] is not None]
    names = [r['method'] for r in here]
    ax.bar(
      range(len(here)),
      [r['error_mean'] for r in here],
      yerr=[r['error_sd'] or 0 for r in here],
      color=['0.6' if m == BASELINE else 'C0' for m in names],
      capsize=3,
    )
    nn = [r['nn_mean'] for r in here if r.get('nn_mean') is not None]
    if nn:
      ax.axhline(nn[0], color='C3', ls='--', label=f'pixel 1-NN {nn[0]:.1f} %')
    ax.set_xticks(range(len(here)), names, rotation=45, ha='right', fontsize=8)
    ax.set_yscale('log')
    ax.set_ylabel('test error (%)')
    ax.set_title(f'{n} labels')
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def report(root: Path, cells, command: str, groups=None) -> list[dict]:
  """The table (Markdown, JSON), the summary figure and the curves of `groups` ((method, labels)
  pairs; all if None)."""
  rows = collect(root, cells)
  (root / 'table.md').write_text(markdown(rows, command))
  (root / 'table.json').write_text(json.dumps({'command': command, 'rows': rows}, indent=2) + '\n')
  plot_curves(root, cells, root / 'curves', groups)
  plot_summary(rows, root / 'summary.png')
  return rows


def main(argv):
  if not FLAGS.config or not FLAGS.workdir:
    raise app.UsageError('--config and --workdir are required')
  overrides = [a for a in argv[1:] if a.startswith('--config.')]
  unknown = [a for a in argv[1:] if not a.startswith('--config.')]
  if unknown:
    raise app.UsageError(f'unknown arguments {unknown}')
  if any(a.startswith('--config.seed=') for a in overrides):
    raise app.UsageError('the seeds come from --seeds, not --config.seed')
  root = Path(FLAGS.workdir)
  cells = plan(FLAGS.config, FLAGS.methods, FLAGS.labels, FLAGS.seeds)
  command = ' '.join(['python experiments/sweep.py', *sys.argv[1:]])
  drawn = set()  # the (method, labels) whose curves are up to date
  if not FLAGS.report_only:
    from jaxssl.errors import Preempted

    for i, (method, labels, seed) in enumerate(cells, 1):
      workdir = cell_dir(root, method, labels, seed)
      done = workdir / 'results.json'
      if done.exists():
        continue
      print(f'[{i}/{len(cells)}] {method}, {labels} labels, seed {seed} -> {workdir}', flush=True)
      t0 = time.time()
      try:
        results = run_cell(FLAGS.config, overrides, method, labels, seed, workdir)
      except Preempted as e:  # the cell checkpointed its last step: the same command resumes it
        print(f'sweep: {e}', file=sys.stderr)
        sys.exit(Preempted.EXIT_CODE)
      if results:
        print(
          f'[{i}/{len(cells)}] {method}, {labels} labels, seed {seed}: '
          f'{100 * results["test_error"]:.2f} % in {(time.time() - t0) / 60:.1f} min',
          flush=True,
        )
      # After every cell, so the table is never stale; only that cell's curves change (redrawing
      # every figure after every cell made a 63-cell sweep's plotting quadratic).
      report(root, cells, command, {(method, labels)})
      drawn.add((method, labels))
  every = {(method, labels) for method, labels, _ in cells}
  rows = report(root, cells, command, every - drawn)
  print((root / 'table.md').read_text())
  missing = sum(len(r['missing']) + len(r['failed']) for r in rows)
  if missing:
    print(f'{missing} cell(s) not finished; re-run the same command to continue', file=sys.stderr)
  return 0


def _parse(argv):
  """absl flags, leaving the --config.KEY=VALUE overrides for the cells."""
  return FLAGS(argv, known_only=True)


if __name__ == '__main__':
  app.run(main, flags_parser=_parse)
