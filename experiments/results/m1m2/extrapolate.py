"""How far M2's constant-lr phase would go: python experiments/results/m1m2/extrapolate.py

Fits err(t) = a + b·t^(-c) (a power law with a floor a) to each `m2_on_m1_long` seed's test
error over M2 epochs 100-667, where its lr is a constant 1e-3, and prints the fitted floor and
the value at the authors' 3,000 epochs. Only the constant-lr part is fitted: the decay after
epoch 667 is a different regime (it took 0.01-0.27 points off in 333 epochs). A fit of ~29 noisy
evaluations a seed; the spread over seeds, and over where the fit starts (printed last), is
the honest error bar, not the fit's.
"""

import json
import sys

import numpy as np
from scipy.optimize import curve_fit

HERE = 'experiments/results/m1m2'
law = lambda t, a, b, c: a + b * t ** (-c)


def curve(seed):
  rows = [json.loads(line) for line in open(f'{HERE}/long_s{seed}/metrics.jsonl')]
  rows = [r for r in rows if 'eval/test/error' in r]
  return np.array([r['step'] / 120 for r in rows]), np.array(
    [100 * r['eval/test/error'] for r in rows]
  )


def fit(t, e, lo=100, hi=667):
  sel = (t >= lo) & (t <= hi)
  p, _ = curve_fit(law, t[sel], e[sel], p0=(3.5, 50.0, 0.7), bounds=([0, 0, 0.05], [10, 1e4, 3]))
  return p, sel.sum()


if __name__ == '__main__':
  seeds = [int(s) for s in sys.argv[1:]] or [0, 1, 2]
  at = []
  for seed in seeds:
    t, e = curve(seed)
    (a, b, c), n = fit(t, e)
    final = e[-1]
    at.append(law(3000, a, b, c))
    print(
      f'seed {seed}: {n} evaluations fitted; floor a = {a:.2f} %, b = {b:.1f}, c = {c:.2f}; '
      f'fit at 667 {law(667, a, b, c):.2f} %, at 1,000 {law(1000, a, b, c):.2f} % (measured with '
      f'the decay: {final:.2f} % at epoch {t[-1]:.0f}), at 3,000 {at[-1]:.2f} %'
    )
  print(f'at 3,000 epochs, constant lr: {np.mean(at):.2f} % ± {np.std(at, ddof=1):.2f} over seeds')
  # How much the answer hangs on where the fit starts (a late start leaves the floor unfixed).
  for lo in (50, 100, 200, 300):
    row = []
    for seed in seeds:
      (a, b, c), _ = fit(*curve(seed), lo=lo)
      row.append(f'seed {seed}: floor {a:.2f}, 3,000 epochs {law(3000, a, b, c):.2f}')
    print(f'fit from epoch {lo}: ' + '; '.join(row))
