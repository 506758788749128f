"""FixMatch, reference recipe (RandAugment), SVHN (svhn_cropped) with 40, 250 or 1000 labels.

  jaxssl train --config=experiments/configs/fixmatch_svhn.py:250 --workdir=runs/fm_svhn_250
Needs a network the first time. As CIFAR-10 (fixmatch_cifar10.py) but no horizontal flips (digits).

Published error (%), FixMatch paper Table 2 (RA): 3.96±2.17 (40), 2.48±0.38 (250),
2.28±0.11 (1000). USB's re-run: 2.08±0.08, 1.99±0.05, 2.00±0.04.
"""

from jaxssl.config import base_config

LABELS = (40, 250, 1000)


def get_config(labels: str = '250'):
  if int(labels) not in LABELS:
    raise ValueError(f'labels must be one of {LABELS}, got {labels}')
  config = base_config('fixmatch')
  config.dataset = 'svhn_cropped'
  config.labels_per_class = int(labels) // 10
  config.backbone = 'wrn28_2'
  config.flip = False
  config.batch_size = 64
  config.uratio = 7
  config.num_steps = 2**20
  config.log_every = 1024
  config.eval_every = config.checkpoint_every = 16 * 1024
  config.eval_batch_size = 1000
  return config
