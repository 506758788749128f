"""The M1+M2 figure (RESULTS.md): python experiments/results/m1m2/plot.py

Test error of q(y|x) over M2 epochs: M1 trained inside each run (150 epochs; seeds 0-1 from the
numbers RESULTS.md quotes, seed 2 from its log) against one M1 trained once (300 epochs,
`mnist_vae_m2.py:m1`) and reused by every M2 seed (`:m2_on_m1`, logs in reuse_sS), the
1,000-epoch schedule on such an M1 (`:m2_on_m1_long`, logs in long_sS) where it has run, and
extrapolate.py's power law fitted to its constant-lr epochs, run on to the authors' 3,000."""

import json
import sys

import matplotlib
import numpy as np

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

HERE = 'experiments/results/m1m2'
sys.path.insert(0, HERE)
import extrapolate  # noqa: E402

EPOCHS = [10, 30, 50, 70, 90, 110, 130, 150, 170, 190, 210, 230, 250, 270, 290, 300]
IN_RUN = {  # % test error at EPOCHS, RESULTS.md
  0: [20.88, 14.82, 11.61, 8.55, 6.86, 6.20, 5.79, 5.53, 5.11, 5.13, 5.05, 4.95, 4.71, 4.59, 4.60,
      4.56],
  1: [17.07, 12.14, 8.15, 6.56, 6.07, 5.70, 5.22, 5.09, 4.93, 4.69, 4.67, 4.53, 4.46, 4.39, 4.40,
      4.40],
}  # fmt: skip


def curve(path, offset):
  rows = [json.loads(line) for line in open(path)]
  rows = [r for r in rows if 'eval/test/error' in r]
  return [r['step'] / 120 - offset for r in rows], [100 * r['eval/test/error'] for r in rows]


fig, ax = plt.subplots(figsize=(8, 4.8))
for seed, errors in IN_RUN.items():
  ax.plot(
    EPOCHS, errors, '.--', color='tab:gray', alpha=0.7, label=None if seed else 'M1 in each run'
  )
x, y = curve(f'{HERE}/s2/metrics.jsonl', 150)
ax.plot(
  [a for a in x if a > 0], y[-len([a for a in x if a > 0]) :], '.--', color='tab:gray', alpha=0.7
)
for seed, color in ((0, 'tab:blue'), (1, 'tab:orange'), (2, 'tab:purple')):
  try:
    x, y = curve(f'{HERE}/reuse_s{seed}/metrics.jsonl', 0)
  except FileNotFoundError:
    continue
  ax.plot(x, y, 'o-', ms=3, color=color, label=f'one M1 reused, seed {seed}')
  try:  # `m2_on_m1_long` on the same split: lr 1e-3 to epoch 667 (unfinished runs end early)
    x, y = curve(f'{HERE}/long_s{seed}/metrics.jsonl', 0)
  except FileNotFoundError:
    continue
  label = f'1,000-epoch schedule, seed {seed} (to epoch {x[-1]:.0f})'
  ax.plot(x, y, 's-', ms=3, lw=1, color=color, alpha=0.6, label=label)
  if x[-1] >= 667:  # the power law fitted to its constant-lr epochs, run on to 3,000
    (a, b, c), _ = extrapolate.fit(*extrapolate.curve(seed))
    t = np.linspace(100, 3000, 200)
    at = extrapolate.law(3000, a, b, c)
    label = f'fit a + b/t^c to epochs 100-667, seed {seed}: {at:.2f} % at 3,000'
    ax.plot(t, extrapolate.law(t, a, b, c), ':', lw=1.5, color=color, label=label)
ax.axhspan(
  3.33 - 0.14, 3.33 + 0.14, color='tab:green', alpha=0.3, label='paper (3,000 epochs): 3.33 ± 0.14'
)
ax.set_yscale('log')
ax.set_xlabel('M2 epoch (120 steps of 100 labeled + 500 unlabeled)')
ax.set_ylabel('test error, % (log scale)')
ax.set_title('M1+M2, MNIST, 100 labels: the M2 phase')
ax.grid(alpha=0.3, which='both')
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig('docs/m1m2_reused_m1.png', dpi=110)
