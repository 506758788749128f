"""FixMatch, reference recipe (RandAugment), CIFAR-100 with 400, 2500 or 10000 labels.

  jaxssl train --config=experiments/configs/fixmatch_cifar100.py:2500 --workdir=runs/fm_c100_2500
Needs a network the first time. WRN-28-8 (filters=128: fixmatch issue #25, 72.6 % accuracy
without it) and weight decay 1e-3 (USB / kekmodel); otherwise as fixmatch_cifar10.py.

Published error (%), FixMatch paper Table 2 (RA): 48.85±1.75 (400), 28.29±0.11 (2500),
22.60±0.12 (10000). USB's re-run (WRN-28-2): 53.37±2.15, 34.29±0.43, 28.28±0.18.
"""

from jaxssl.config import base_config

LABELS = (400, 2500, 10000)


def get_config(labels: str = '2500'):
  if int(labels) not in LABELS:
    raise ValueError(f'labels must be one of {LABELS}, got {labels}')
  config = base_config('fixmatch')
  config.dataset = 'cifar100'
  config.labels_per_class = int(labels) // 100
  config.backbone = 'wrn28_8'
  config.weight_decay = 1e-3
  config.batch_size = 64
  config.uratio = 7
  config.num_steps = 2**20
  config.log_every = 1024
  config.eval_every = config.checkpoint_every = 16 * 1024
  config.eval_batch_size = 1000
  return config
