"""Labeled-only baseline on MNIST with the Improved-GAN discriminator, 100 labels.

Same network, Adam, Polyak averaging and schedule as mnist_improved_gan.py, no unlabeled data:
  jaxssl train --config=experiments/configs/mnist_supervised.py --workdir=runs/mnist_sup
  jaxssl train --config=experiments/configs/mnist_supervised.py:quick --workdir=runs/sup_quick
"""

from jaxssl.config import base_config


def get_config(variant: str = 'full'):
  if variant not in ('full', 'quick'):
    raise ValueError(f"variant must be 'full' or 'quick', got {variant!r}")
  config = base_config('supervised')
  config.dataset = 'mnist'
  config.labels_per_class = 10
  config.batch_size = 100
  steps_per_epoch = 60_000 // config.batch_size
  config.num_steps = {'full': 300, 'quick': 10}[variant] * steps_per_epoch
  if variant == 'quick':
    config.polyak_decay = 0.999
  config.eval_every = config.checkpoint_every = steps_per_epoch * (10 if variant == 'full' else 1)
  return config
