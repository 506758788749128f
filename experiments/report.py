"""Markdown table of every run under the given directories (their results.json files), then the
mean and standard deviation over seeds of every setting that ran with more than one seed.

python experiments/report.py runs/
"""

import collections
import json
import statistics
import sys
from pathlib import Path

COLUMNS = (
  'method',
  'variant',
  'labels',
  'seed',
  'steps',
  'test error',
  'raw',
  'wall',
  'img/s',
  'device',
)


def runs(paths):
  """(results.json contents, variant name) of every run under `paths`."""
  for root in paths:
    for path in sorted(Path(root).rglob('results.json')):
      config = json.loads((path.parent / 'config.json').read_text())
      variant = config.get('generator_loss', config.get('backbone', ''))
      if config.get('stacked'):  # an M1-only run has no classifier to average with the others
        variant = 'M1 only' if config.get('m1_fraction') == 1 else 'M1+M2'
        variant += ' (M1 reused)' if config.get('init_from') else ''
      if config.get('split_seed', -1) >= 0:  # one labeled split under every seed: not averaged
        recipe = config.get('split_recipe', 'per_class')  # with runs that each drew their own
        name = "the authors' split" if recipe == 'improved_gan' else 'split'
        variant = ', '.join(filter(None, [variant, f'{name} {config["split_seed"]}']))

      yield json.loads(path.read_text()), variant


def row(r, variant):
  raw = r.get('test_raw_error')
  return (
    r['method'],
    variant,
    r['labels'],
    r['seed'],
    r['steps'],
    f'{100 * r["test_error"]:.2f} % ({r["test_errors"]})',
    '' if raw is None else f'{100 * raw:.2f} %',
    f'{r["wall_seconds"] / 60:.1f} min',
    r.get('images_per_second') or '',
    f'{r["device"]} x{r["device_count"]}',
  )


def over_seeds(found):
  """{(method, variant, labels, steps): [test error in %, one per seed]}."""
  groups = collections.defaultdict(list)
  for r, variant in found:
    groups[r['method'], variant, r['labels'], r['steps']].append(100 * r['test_error'])
  return {k: v for k, v in groups.items() if len(v) > 1}


def main(argv):
  found = list(runs(argv or ['runs']))
  print('| ' + ' | '.join(COLUMNS) + ' |')
  print('|' + '---|' * len(COLUMNS))
  for r, variant in found:
    print('| ' + ' | '.join(str(c) for c in row(r, variant)) + ' |')
  if groups := over_seeds(found):
    print('\n| method | variant | labels | steps | seeds | test error, mean ± sd |')
    print('|---|---|---|---|---|---|')
    for (method, variant, labels, steps), errors in groups.items():
      spread = f'{statistics.mean(errors):.2f} % ± {statistics.stdev(errors):.2f}'
      print(f'| {method} | {variant} | {labels} | {steps} | {len(errors)} | {spread} |')


if __name__ == '__main__':
  main(sys.argv[1:])
