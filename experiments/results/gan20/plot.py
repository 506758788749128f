"""The 20-label Improved-GAN figures (RESULTS.md): python experiments/results/gan20/plot.py

jaxssl's runs from their committed logs (s0..2 on CPU, gpu_s0..2 on an H100), the PyTorch port of
the authors' script (torch_port.py) on the same labeled splits from its logs, pixel 1-NN on each
split, the paper's band."""

import json
import re

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

HERE = 'experiments/results/gan20'
NN = {0: 6394, 1: 4677, 2: 5190}  # pixel 1-NN test errors on each seed's 20-image split
COLORS = {0: 'tab:blue', 1: 'tab:orange', 2: 'tab:purple'}


def evaluations(run: str) -> list[dict]:
  rows = [json.loads(line) for line in open(f'{HERE}/{run}/metrics.jsonl')]
  return [r for r in rows if 'eval/test/errors' in r]


def port(log: str) -> list[tuple[int, int]]:
  """(epoch, Polyak test errors) of a torch_port.py log; none where it does not exist."""
  try:
    text = open(f'{HERE}/{log}').read()
  except FileNotFoundError:
    return []
  return [(int(e), int(p)) for e, p in re.findall(r'epoch (\d+):.*?Polyak\)? (\d+)', text)]


def finish(ax, fig, title: str, path: str, ylabel: str, **legend) -> None:
  """The 1-NN key, the paper's band, labels; saved to `path`."""
  ax.plot([], [], ':', color='gray', label='pixel 1-NN on the split')
  ax.axhspan(
    1677 - 452, 1677 + 452, color='tab:green', alpha=0.25, label='paper (300 epochs): 1,677 ± 452'
  )
  ax.set_xlabel('epoch (600 steps)')
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, **legend)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


# The first epochs: the CPU runs and the port.
fig, ax = plt.subplots(figsize=(7, 4.2))
for seed, color in COLORS.items():
  rows = evaluations(f's{seed}')
  ax.plot(
    [r['step'] / 600 for r in rows],
    [r['eval/test/errors'] for r in rows],
    'o-',
    ms=3,
    color=color,
    label=f'jaxssl seed {seed} (Polyak)',
  )
  ax.axhline(NN[seed], color=color, ls=':', lw=1)
  if points := port(f'torch_port_lab2_s{seed}.log'):
    ax.plot(*zip(*points), 's--', ms=3, color=color, alpha=0.6, label=f'PyTorch port, split {seed}')
ax.set_xlim(0, 21)
ax.set_ylim(0, 7000)
title = 'Improved-GAN paper recipe, MNIST, 20 labels: the first epochs'
finish(ax, fig, title, 'docs/gan20_first_epochs.png', 'test errors of 10,000', ncol=2)

# To epoch ~200 on an H100 (2026-11-27), the CPU runs' first epochs beside them, and the port's
# longer runs.
fig, ax = plt.subplots(figsize=(7.5, 4.4))
for seed, color in COLORS.items():
  rows = evaluations(f'gpu_s{seed}')
  epochs = [r['step'] / 600 for r in rows]
  ax.plot(
    epochs, [r['eval/test/errors'] for r in rows], '-', color=color, label=f'seed {seed}, H100'
  )
  ax.plot(epochs, [r['eval/test/raw/errors'] for r in rows], '-', color=color, alpha=0.25, lw=0.8)
  cpu = evaluations(f's{seed}')
  ax.plot(
    [r['step'] / 600 for r in cpu],
    [r['eval/test/errors'] for r in cpu],
    'o',
    ms=3,
    color=color,
    label=f'seed {seed}, CPU',
  )
  ax.axhline(NN[seed], color=color, ls=':', lw=1)
  if points := port(f'torch_port_lab2_s{seed}_long.log'):
    ax.plot(*zip(*points), '--', color=color, alpha=0.7, lw=1, label=f'PyTorch port, split {seed}')
ax.plot([], [], '-', color='gray', alpha=0.3, label='raw weights')
ax.set_xlim(0, 210)
ax.set_ylim(0, 8500)
title = 'Improved-GAN paper recipe, MNIST, 20 labels, to epoch ~200'
finish(
  ax, fig, title, 'docs/gan20_long.png', 'test errors of 10,000 (Polyak average)', ncol=3,
  loc='lower left',
)  # fmt: skip

# 300 epochs on the authors' own split (their --seed_data=1, --count=2: split_recipe=improved_gan,
# split_seed=1), model seeds 0-2 on an H100 (seventeenth sitting).
AUTHORS_NN = 5252  # pixel 1-NN on that split
fig, ax = plt.subplots(figsize=(7.5, 4.4))
for seed, color in COLORS.items():
  run = f'authors_split_s{seed}'
  config = json.load(open(f'{HERE}/{run}/config.json'))
  assert (config['split_recipe'], config['split_seed'], config['seed']) == ('improved_gan', 1, seed)
  rows = evaluations(run)
  epochs = [r['step'] / 600 for r in rows]
  label = f'seed {seed}, H100 (Polyak)'
  ax.plot(epochs, [r['eval/test/errors'] for r in rows], 'o-', ms=2, color=color, label=label)
  ax.plot(epochs, [r['eval/test/raw/errors'] for r in rows], '-', color=color, alpha=0.25, lw=0.8)
ax.axhline(AUTHORS_NN, color='gray', ls=':', lw=1)
ax.plot([], [], '-', color='gray', alpha=0.3, label='raw weights')
ax.set_xlim(0, 300)
ax.set_ylim(0, 8500)
title = "Improved-GAN paper recipe, MNIST, 20 labels, the authors' split, 300 epochs"
finish(
  ax, fig, title, 'docs/gan20_authors_split.png', 'test errors of 10,000', ncol=2, loc='lower left'
)
