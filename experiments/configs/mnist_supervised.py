"""Labeled-only baseline on MNIST with the Improved-GAN discriminator, 100 labels.

Same network (its noise and data-dependent init), Adam, weight averaging and schedule as
mnist_improved_gan.py, no unlabeled data:
  jaxssl train --config=experiments/configs/mnist_supervised.py --workdir=runs/mnist_sup
  jaxssl train --config=experiments/configs/mnist_supervised.py:quick --workdir=runs/sup_quick
The baseline of the consistency methods (small CNN) is mnist_ssl.py:supervised,<labels>.
"""

from jaxssl.config import base_config

# The supervised knobs that reproduce Improved-GAN's classifier training.
LIKE_IMPROVED_GAN = dict(
  backbone='gan_mlp',
  data_init=True,
  optimizer='adam',
  lr=0.003,
  adam_b1=0.5,
  lr_schedule='linear_decay',
  lr_decay_fraction=0.0,
  weight_decay=0.0,
  augment_labeled=False,
  ema_decay=0.9999,
)


def get_config(variant: str = 'full'):
  if variant not in ('full', 'quick'):
    raise ValueError(f"variant must be 'full' or 'quick', got {variant!r}")
  config = base_config('supervised')
  config.update(LIKE_IMPROVED_GAN)
  config.dataset = 'mnist'
  config.labels_per_class = 10
  config.batch_size = 100
  steps_per_epoch = 60_000 // config.batch_size
  config.num_steps = {'full': 300, 'quick': 10}[variant] * steps_per_epoch
  if variant == 'quick':
    config.ema_decay = 0.999
  config.eval_every = config.checkpoint_every = steps_per_epoch * (10 if variant == 'full' else 1)
  return config
