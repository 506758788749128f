"""FixMatch, reference recipe (RandAugment), CIFAR-10 with 40, 250 or 4000 labels.

  jaxssl train --config=experiments/configs/fixmatch_cifar10.py:250 --workdir=runs/fm_c10_250
Needs a network the first time (TFDS downloads cifar10). WRN-28-2, B=64, μ=7 (960 images per
forward), τ=0.95, λu=1, SGD Nesterov 0.03 with cos(7πk/16K), K=2^20, L2 5e-4 on kernels, EMA 0.999.

Published error (%), 5 folds, FixMatch paper Table 2 (RA): 13.81±3.37 (40), 5.07±0.65 (250),
4.26±0.05 (4000). USB's re-run (best of run, 3 seeds): 8.33±1.41, 4.97±0.05, 4.29±0.10.
`--config.op_prob=1.0` applies every RandAugment op (the paper's wording; fixmatch issue #65).
"""

from jaxssl.config import base_config

LABELS = (40, 250, 4000)


def get_config(labels: str = '250'):
  if int(labels) not in LABELS:
    raise ValueError(f'labels must be one of {LABELS}, got {labels}')
  config = base_config('fixmatch')
  config.dataset = 'cifar10'
  config.labels_per_class = int(labels) // 10
  config.backbone = 'wrn28_2'
  config.batch_size = 64
  config.uratio = 7
  config.num_steps = 2**20
  config.log_every = 1024
  config.eval_every = config.checkpoint_every = 16 * 1024  # fixmatch checkpoints every 1024
  config.eval_batch_size = 1000
  return config
