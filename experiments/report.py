"""Markdown table of every run under the given directories (their results.json files).

python experiments/report.py runs/
"""

import json
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


def rows(paths):
  for root in paths:
    for path in sorted(Path(root).rglob('results.json')):
      r = json.loads(path.read_text())
      config = json.loads((path.parent / 'config.json').read_text())
      variant = (
        'M1+M2'
        if config.get('stacked')
        else config.get('generator_loss', config.get('backbone', ''))
      )
      raw = r.get('test_raw_error')
      yield (
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


def main(argv):
  print('| ' + ' | '.join(COLUMNS) + ' |')
  print('|' + '---|' * len(COLUMNS))
  for row in rows(argv or ['runs']):
    print('| ' + ' | '.join(str(c) for c in row) + ' |')


if __name__ == '__main__':
  main(sys.argv[1:])
