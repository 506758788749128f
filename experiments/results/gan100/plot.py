"""The paper-length Improved-GAN figure (RESULTS.md): python experiments/results/gan100/plot.py

Seeds 1 and 2 from their committed logs; seed 0's run (authors' G init, eighth sitting) from the
test errors RESULTS.md quotes (its log was not kept)."""

import json

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

HERE = 'experiments/results/gan100'
SEED0 = {10: 1225, 20: 475, 40: 264, 60: 244, 80: 236, 100: 230, 130: 233}
fig, ax = plt.subplots(figsize=(7, 4))
for seed, color in ((1, 'tab:blue'), (2, 'tab:orange')):
  rows = [json.loads(line) for line in open(f'{HERE}/s{seed}/metrics.jsonl')]
  rows = [r for r in rows if 'eval/test/errors' in r]
  epochs = [r['step'] / 600 for r in rows]
  polyak = [r['eval/test/errors'] for r in rows]
  ax.plot(epochs, polyak, 'o-', ms=3, color=color, label=f'seed {seed}, Polyak average')
  raw = [r['eval/test/raw/errors'] for r in rows]
  ax.plot(epochs, raw, '.-', ms=2, alpha=0.5, color=color, label=f'seed {seed}, raw weights')
ax.plot(
  list(SEED0), list(SEED0.values()), 's--', ms=4, color='tab:gray', label='seed 0, Polyak average'
)
ax.axhspan(93 - 6.5, 93 + 6.5, color='tab:green', alpha=0.25, label='paper: 93 ± 6.5')
ax.set_yscale('log')
ax.set_xlim(0, 300)
ax.set_xlabel('epoch (600 steps)')
ax.set_ylabel('test errors of 10,000 (log scale)')
ax.set_title('Improved-GAN paper recipe, MNIST, 100 labels')
ax.grid(alpha=0.3, which='both')
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig('docs/gan_paper_runs.png', dpi=110)
