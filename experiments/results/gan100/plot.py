"""The paper-length Improved-GAN figures (RESULTS.md): python experiments/results/gan100/plot.py

docs/gan_paper_runs.png, 100 labels: seeds 1, 2 and 3 (CPU) and seed 0
(H100) from their committed logs, the runs on the authors' own split (authors_split_sS), and the
earlier CPU run of seed 0 (authors' G init, eighth sitting) from the test errors RESULTS.md
quotes (its log was not kept).
docs/gan1000.png, 1,000 labels: seeds 0-2 (H100), the CPU runs of the same seeds to epoch 10 and
the labeled-only baselines, where their logs are committed."""

import json
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = 'experiments/results'
SEED0_CPU = {10: 1225, 20: 475, 40: 264, 60: 244, 80: 236, 100: 230, 130: 233}
COLORS = ('tab:gray', 'tab:blue', 'tab:orange', 'tab:red')


def evaluations(path):
  rows = [json.loads(line) for line in open(f'{path}/metrics.jsonl')]
  rows = [r for r in rows if 'eval/test/errors' in r]
  epochs = [r['step'] / 600 for r in rows]
  return epochs, [r['eval/test/errors'] for r in rows], [r['eval/test/raw/errors'] for r in rows]


def finish(ax, fig, title, path):
  ax.set_yscale('log')
  ax.set_xlim(0, 300)
  ax.set_xlabel('epoch (600 steps)')
  ax.set_ylabel('test errors of 10,000 (log scale)')
  ax.set_title(title)
  ax.grid(alpha=0.3, which='both')
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


AUTHORS_SPLIT = ('tab:purple', 'tab:pink', 'tab:brown', 'tab:olive')
WHERE = {'authors_split_s0': 'CPU', 'authors_split_s3': 'CPU'}  # s1, s2: an H100


def draw_100_labels(ax):
  for seed, run in ((1, 's1'), (2, 's2'), (0, 'gpu_s0'), (3, 's3')):
    if not os.path.exists(f'{RESULTS}/gan100/{run}/metrics.jsonl'):
      continue
    epochs, polyak, raw = evaluations(f'{RESULTS}/gan100/{run}')
    where = 'H100' if run.startswith('gpu') else 'CPU'
    ax.plot(epochs, polyak, 'o-', ms=3, color=COLORS[seed], label=f'seed {seed} ({where}), Polyak')
    ax.plot(epochs, raw, '.-', ms=2, alpha=0.5, color=COLORS[seed], label=f'seed {seed}, raw')
  ax.plot(
    list(SEED0_CPU),
    list(SEED0_CPU.values()),
    's--',
    ms=4,
    color='k',
    alpha=0.6,
    label='seed 0 (CPU, stopped at 130), Polyak',
  )
  runs = sorted(r for r in os.listdir(f'{RESULTS}/gan100') if r.startswith('authors_split_s'))
  for color, run in zip(AUTHORS_SPLIT, runs):  # the authors' split (their --seed_data=1)
    config = json.load(open(f'{RESULTS}/gan100/{run}/config.json'))
    assert config['split_recipe'] == 'improved_gan', run
    epochs, polyak, raw = evaluations(f'{RESULTS}/gan100/{run}')
    where = WHERE.get(run, 'H100')
    label = f"seed {config['seed']} ({where}), the authors' split {config['split_seed']}, Polyak"
    ax.plot(epochs, polyak, 'o-', ms=3, color=color, label=label)
    ax.plot(epochs, raw, '.-', ms=2, alpha=0.5, color=color, label=f'seed {config["seed"]}, raw')
  ax.axhspan(93 - 6.5, 93 + 6.5, color='tab:green', alpha=0.25, label='paper: 93 ± 6.5')


# Two panels: the whole run on a log scale, and its last two thirds, where the seeds separate,
# on a linear one; one legend beside them, off the curves.
fig, (ax, zoom) = plt.subplots(1, 2, figsize=(14, 5))
draw_100_labels(ax)
draw_100_labels(zoom)
ax.set_yscale('log')
ax.set_xlim(0, 300)
ax.set_xlabel('epoch (600 steps)')
ax.set_ylabel('test errors of 10,000 (log scale)')
ax.set_title('Improved-GAN paper recipe, MNIST, 100 labels')
ax.grid(alpha=0.3, which='both')
zoom.set_xlim(100, 300)
zoom.set_ylim(70, 150)
zoom.set_xlabel('epoch (600 steps)')
zoom.set_ylabel('test errors of 10,000')
zoom.set_title('epochs 100-300')
zoom.grid(alpha=0.3)
zoom.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.02, 1.0))
fig.tight_layout()
fig.savefig('docs/gan_paper_runs.png', dpi=110)

fig, ax = plt.subplots(figsize=(7, 4))
for seed in range(3):
  epochs, polyak, raw = evaluations(f'{RESULTS}/gan1000/gpu_s{seed}')
  ax.plot(epochs, polyak, 'o-', ms=3, color=COLORS[seed], label=f'seed {seed} (H100), Polyak')
  ax.plot(epochs, raw, '.-', ms=2, alpha=0.5, color=COLORS[seed], label=f'seed {seed}, raw')
  if os.path.exists(f'{RESULTS}/gan1000/cpu_s{seed}/metrics.jsonl'):
    epochs, polyak, _ = evaluations(f'{RESULTS}/gan1000/cpu_s{seed}')
    ax.plot(epochs, polyak, 'x', ms=8, color=COLORS[seed], label=f'seed {seed} (CPU), Polyak')
  if os.path.exists(f'{RESULTS}/gan1000/sup_s{seed}/metrics.jsonl'):
    epochs, polyak, _ = evaluations(f'{RESULTS}/gan1000/sup_s{seed}')
    label = 'labeled only, same MLP and recipe' if seed == 0 else None
    ax.plot(epochs, polyak, '--', lw=1, color=COLORS[seed], label=label)
ax.axhline(1116, color='tab:red', ls=':', label='pixel 1-NN on the splits (~1,116)')
finish(ax, fig, 'Improved-GAN paper recipe, MNIST, 1,000 labels', 'docs/gan1000.png')
