"""The FixMatch family on CIFAR-10, SVHN, CIFAR-100 as USB trains it: `<method>,<dataset>,<labels>`.

  jaxssl train --config=experiments/configs/usb_reference.py:softmatch,cifar10,40 --workdir=runs/sm
  jaxssl train --config=experiments/configs/usb_reference.py:adamatch,svhn,250 --config.seed=1 ...
The datasets download through TFDS the first time (a network is needed once).

USB's classic_cv recipe (microsoft/Semi-supervised-learning, config/classic_cv/<method>/*.yaml),
FixMatch's reference recipe but for CIFAR-100: WRN-28-2 for every dataset (USB's yamls; the
FixMatch paper's CIFAR-100 WRN-28-8 is in fixmatch_reference.py), B = 64, μ = 7, SGD Nesterov 0.9,
lr 0.03·cos(7πk/16K) over 2^20 steps, weight decay 5e-4 (CIFAR-100: 1e-3), EMA 0.999, λu = 1; and
each method's knobs from its yamls (the same for every dataset and label count; ReMixMatch's μ
and λu are its own):
- freematch: ema_p 0.999, ent_loss_ratio 0.001 (the method's default, 0.01, is USB's argparse
  default, which none of its 42 yamls uses). Not implemented: `clip_thresh`, on in USB's SVHN
  yamls only.
- softmatch: ema_p 0.999, n_sigma 2, uniform alignment, one μ/σ² for all classes.
- adamatch: p_cutoff 0.95 (relative), ema_p 0.999.
- dash: γ 1.27, C 1.0001, ρ_min 0.05, T 0.5, a 2,048-step warm-up, ρ updated every 10 epochs
  of 1,024 steps (ρ_init: see dash.py's deviations).
- simmatch: T 0.1, a 128-wide embedding from three heads (use_epass), λin 1, α 0.9, a 32-batch
  alignment queue, bank momentum 0.7 (use_ema_teacher off for these datasets), no smoothing or
  instance loss in the first epoch (1,024 steps).
- remixmatch: μ = 1, λu 1.5, λkl 0.5, λrot 0.5, T 0.5, MixUp α 0.75, two strong views, λu and
  λkl ramped over 1/64 of the run (16,384 steps).
- fixmatch, flexmatch: their reference recipes (τ 0.95; FlexMatch's threshold warm-up).

PUBLISHED: USB's re-run (results/classic_cv.csv: best error, 3 seeds) and, where
../shared/PAPERS.md has it, the method paper's number ('' where none; '[unverified]' where it is
not checked against a source).
"""

import importlib.util
from pathlib import Path

from jaxssl.config import base_config


def _sibling(name: str):
  """A config module beside this file. `jaxssl` loads a config by its path, where the repository's
  `experiments` package is not importable."""
  spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f'{name}.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


fixmatch_reference = _sibling('fixmatch_reference')

COLUMNS = ('cifar10,40', 'cifar10,250', 'cifar10,4000', 'svhn,40', 'svhn,250', 'svhn,1000',
           'cifar100,400', 'cifar100,2500', 'cifar100,10000')  # fmt: skip
USB = {  # results/classic_cv.csv, in COLUMNS order
  'fixmatch': (
    '8.33±1.41 4.97±0.05 4.29±0.1 2.08±0.08 1.99±0.05 '
    '2.0±0.04 53.37±2.15 34.29±0.43 28.28±0.18'
  ),
  'flexmatch': (
    '5.21±0.36 5.0±0.05 4.28±0.05 3.36±0.37 5.02±1.2 '
    '5.43±0.46 50.15±1.51 33.35±0.33 27.12±0.04'
  ),
  'freematch': (
    '4.97±0.09 4.85±0.1 4.14±0.19 3.79±0.03 4.09±0.66 '
    '4.31±0.0 49.24±2.16 32.79±0.21 27.17±0.11'
  ),
  'softmatch': (
    '5.06±0.02 4.84±0.1 4.27±0.12 2.31±0.0 2.15±0.05 '
    '2.08±0.04 49.64±1.46 33.05±0.05 27.26±0.03'
  ),
  'adamatch': (
    '5.05±0.04 5.01±0.11 4.29±0.06 2.32±0.17 2.14±0.1 '
    '2.04±0.02 47.82±1.48 33.26±0.55 27.53±0.12'
  ),
  'dash': (
    '15.01±3.7 5.13±0.26 4.35±0.09 2.08±0.09 1.97±0.01 '
    '2.03±0.03 53.98±2.31 34.47±0.12 27.72±0.13'
  ),
  'simmatch': (
    '5.18±0.15 4.99±0.12 4.51±0.08 3.19±0.74 2.26±0.11 '
    '2.08±0.06 48.82±1.07 32.54±0.27 26.42±0.18'
  ),
  'remixmatch': (
    '14.5±2.58 9.21±0.55 4.88±0.05 31.27±18.79 6.38±1.09 '
    '5.34±0.45 57.1±0.0 34.77±0.32 26.18±0.23'
  ),
}  # fmt: skip
PAPER = {  # ../shared/PAPERS.md §1.2, §1.4 (CIFAR-100 columns there are WRN-28-8 runs)
  'fixmatch': dict(zip(COLUMNS, ('13.81±3.37', '5.07±0.65', '4.26±0.05', '3.96±2.17', '2.48±0.38',
                                 '2.28±0.11', '48.85±1.75', '28.29±0.11', '22.60±0.12'))),
  'flexmatch': {'cifar10,40': '4.97±0.06', 'cifar10,250': '4.98±0.09', 'cifar10,4000': '4.19±0.01'},
  'freematch': {'cifar10,40': '4.90±0.04 [unverified]', 'cifar10,250': '4.88',
                'cifar10,4000': '4.10±0.02 [unverified]'},
  'softmatch': {'cifar10,40': '4.91±0.12 [unverified]', 'cifar10,250': '4.82±0.09 [unverified]',
                'cifar10,4000': '4.04±0.02 [unverified]'},
  'adamatch': {},
  'dash': {'cifar10,40': '13.22±3.75', 'cifar10,250': '4.56±0.13', 'cifar10,4000': '4.08±0.06',
           'cifar100,400': '44.76±0.96', 'cifar100,2500': '27.18±0.21'},
  'simmatch': {},
  # The FixMatch paper's re-run (Table 2, 5 folds; CIFAR-100 on WRN-28-8).
  'remixmatch': dict(zip(COLUMNS, ('19.10±9.64', '5.44±0.05', '4.72±0.13', '3.34±0.20',
                                   '2.92±0.48', '2.65±0.08', '44.28±2.06', '27.43±0.31',
                                   '23.03±0.56'))),
}  # fmt: skip
PUBLISHED = {
  (method, column): (PAPER[method].get(column, ''), usb)
  for method, row in USB.items()
  for column, usb in zip(COLUMNS, row.split())
}
KNOBS = {
  'fixmatch': {},
  'flexmatch': {},
  'freematch': dict(sat_momentum=0.999, fairness_weight=0.001),
  'softmatch': dict(ema_p=0.999, n_sigma=2.0, dist_uniform=True, per_class=False),
  'adamatch': dict(threshold=0.95, ema_p=0.999),
  'dash': dict(gamma=1.27, rho_c=1.0001, rho_min=0.05, warmup_steps=2048, rho_update_every=10_240,
               temperature=0.5),
  'simmatch': dict(temperature=0.1, proj_size=128, epass=True, lambda_in=1.0, smoothing_alpha=0.9,
                   da_len=32, bank_momentum=0.7, bank_warmup_steps=1024),
  'remixmatch': dict(uratio=1, lambda_u=1.5, lambda_kl=0.5, lambda_rot=0.5, ramp_steps=16_384,
                     temperature=0.5, mixup_alpha=0.75, num_strong=2),
}  # fmt: skip
VARIANTS = tuple(f'{m},{c}' for m, c in PUBLISHED)


def get_config(arg: str = 'softmatch,cifar10,40'):
  method, _, column = arg.partition(',')
  if (method, column) not in PUBLISHED:
    raise ValueError(f'expected <method>,<dataset>,<labels> of {", ".join(VARIANTS)}; got {arg!r}')
  recipe = fixmatch_reference.get_config(column)
  config = base_config(method)
  for key in config:
    if key in recipe and key != 'method':
      config[key] = recipe[key]
  config.backbone = 'wrn28_2'  # USB: WRN-28-2 on CIFAR-100 too
  config.update(KNOBS[method])
  return config
