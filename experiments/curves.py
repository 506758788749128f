"""Learning curves of any runs, from their metrics.jsonl: one line per workdir, a colour per group.

  python experiments/curves.py runs/a_s0 runs/a_s1 runs/b_s0 --out=curves.png
  python experiments/curves.py 'runs/gan_*' --x=wall --key=eval/test/errors --group='_s\\d+$'

--x: step, epoch (--steps_per_epoch) or wall (seconds of training as each run logged them, resumed
runs continuing where they stopped). --group: a regex removed from each workdir's name to find its
group (default: a trailing _sN or /seedN), so the seeds of one setting share a colour and the
legend shows each group's final mean. Arguments are workdirs or glob patterns.
"""

import argparse
import collections
import glob
import json
import re
import statistics
from pathlib import Path


def read(workdir: Path, key: str) -> list[tuple[int, float, float]]:
  """(step, wall seconds, value) of every row of workdir/metrics.jsonl that logged `key`.

  clu's uptime restarts with each process; a resumed run's later rows continue from the wall time
  the earlier process had reached.
  """
  points, offset, last_uptime, last_wall = [], 0.0, None, 0.0
  for line in (workdir / 'metrics.jsonl').read_text().splitlines():
    row = json.loads(line)
    uptime = row.get('uptime')
    if uptime is not None:
      if last_uptime is not None and uptime < last_uptime:
        offset = last_wall
      last_uptime, last_wall = uptime, offset + uptime
    if key in row:
      points.append((row['step'], last_wall, row[key]))
  return points


def is_dir(path: str) -> bool:
  return Path(path).is_dir()


def group_of(workdir: Path, pattern: str) -> str:
  return re.sub(pattern, '', str(workdir)) or str(workdir)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('workdirs', nargs='+')
  parser.add_argument(
    '--key', action='append', help='metric(s) to plot; a second is dashed (default eval/test/error)'
  )
  parser.add_argument('--x', choices=('step', 'epoch', 'wall'), default='step')
  parser.add_argument('--steps_per_epoch', type=int, default=600)
  parser.add_argument('--group', default=r'(_s|/seed|_seed)\d+$')
  parser.add_argument('--label', action='append', default=[], help='GROUP=TEXT for the legend')
  parser.add_argument('--ylim', type=float, nargs=2, default=None)
  parser.add_argument('--hband', type=float, nargs=2, default=None, help='LOW HIGH: a shaded band')
  parser.add_argument('--hband_label', default='')
  parser.add_argument('--log', action='store_true', help='log-scale y axis')
  parser.add_argument('--title', default='')
  parser.add_argument('--out', default='curves.png')
  args = parser.parse_args(argv)
  keys = args.key or ['eval/test/error']

  dirs = [Path(p) for w in args.workdirs for p in sorted(filter(is_dir, glob.glob(w))) or [w]]
  missing = [str(d) for d in dirs if not (d / 'metrics.jsonl').exists()]
  if missing:
    parser.error(f'no metrics.jsonl in {", ".join(missing)}')
  labels = dict(item.split('=', 1) for item in args.label)
  groups = collections.defaultdict(list)
  for d in dirs:
    groups[group_of(d, args.group)].append(d)

  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7, 4.2))
  for colour, (name, members) in enumerate(groups.items()):
    for key, style in zip(keys, ('-', '--', ':', '-.')):
      finals, lines = [], []
      for d in members:
        points = read(d, key)
        if not points:
          continue
        steps, wall, values = zip(*points)
        epochs = [s / args.steps_per_epoch for s in steps]
        x = {'step': steps, 'epoch': epochs, 'wall': wall}[args.x]
        finals.append(values[-1])
        lines += ax.plot(x, values, style, color=f'C{colour}', lw=1, alpha=0.85)
      if lines:
        spread = f' ± {statistics.stdev(finals):.4g}' if len(finals) > 1 else ''
        text = labels.get(name, name) + (f' {key}' if len(keys) > 1 else '')
        lines[0].set_label(f'{text}: last {statistics.mean(finals):.4g}{spread} (n={len(finals)})')
  ax.set_xlabel({'step': 'step', 'epoch': 'epoch', 'wall': 'wall-clock seconds'}[args.x])
  ax.set_ylabel(', '.join(keys))
  if args.hband:
    ax.axhspan(*args.hband, color='0.5', alpha=0.2, label=args.hband_label or None)
  if args.log:
    ax.set_yscale('log')
  if args.ylim:
    ax.set_ylim(*args.ylim)
  ax.set_title(args.title, fontsize=9)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(args.out, dpi=90)
  print(args.out)


if __name__ == '__main__':
  main()
