"""The M2-alone label-weight figure (RESULTS.md): python experiments/results/m2alpha/plot.py"""

import json

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt

HERE = 'experiments/results/m2alpha'
ref = json.load(open(f'{HERE}/reference_jonemeth.json'))['epoch_test_error']
fig, ax = plt.subplots(1, 2, figsize=(11, 4))
for a in ('0.1', '1', '10', '100'):
  rows = [json.loads(l) for l in open(f'{HERE}/a{a}/metrics.jsonl') if 'eval/test/error' in l]
  ep = [r['step'] / 120 for r in rows]
  err = [100 * r['eval/test/error'] for r in rows]
  for x in ax:
    x.plot(ep, err, marker='o', ms=3, label=f'jaxssl M2, alpha = {a} (seed 0)')
e, r = zip(*ref)
for x in ax:
  x.plot(
    e,
    [100 * v for v in r],
    'k-',
    lw=1,
    label='jonemeth/generative-models M2, alpha = 0.1·N (published log)',
  )
for x in ax:
  x.axhspan(
    11.97 - 1.71, 11.97 + 1.71, color='tab:green', alpha=0.2, label='paper M2: 11.97 ± 1.71 %'
  )
  x.set_xlabel('epoch (a pass over the unlabeled images)')
  x.set_ylabel('test error (%)')
  x.grid(alpha=0.3)
ax[0].set_xlim(0, 22)
ax[0].set_ylim(0, 70)
ax[0].set_title('the first 20 epochs')
ax[1].set_xscale('log')
ax[1].set_xlim(1, 3000)
ax[1].set_ylim(0, 90)
ax[1].set_title("to the paper's 3,000 epochs (log scale)")
ax[1].legend(fontsize=7, loc='upper right')
fig.suptitle('M2 alone, MNIST, 100 labels: test error against epochs, by label weight')
fig.tight_layout()
fig.savefig('docs/m2_alone_label_weight.png', dpi=110)
