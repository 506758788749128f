"""Eight CPU devices, so every sharded code path runs in CI; small shared fixtures."""

import os

os.environ['XLA_FLAGS'] = (
  os.environ.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=8'
).strip()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import jax  # noqa: E402
import pytest  # noqa: E402

from jaxssl.config import base_config  # noqa: E402
from jaxssl.data import datasets  # noqa: E402


@pytest.fixture(scope='session')
def mnist():
  return datasets.load('mnist')


def tiny_config(method: str, **overrides):
  """A config that trains `method` for a couple of steps on real MNIST."""
  config = base_config(method)
  config.update(
    dict(
      num_steps=2,
      batch_size=16,
      labels_per_class=10,
      log_every=1,
      eval_every=2,
      checkpoint_every=2,
      eval_batch_size=1000,
      num_samples=16,
      init_examples=64,
    )
  )
  if 'backbone' in config:  # the discriminative methods: a tiny CNN, 2 unlabeled per labeled
    config.update(dict(backbone='cnn', cnn_widths=(8, 16), uratio=2, flip=False))
  config.update(overrides)
  return config


assert jax.device_count() == 8, 'conftest must set XLA_FLAGS before jax initializes'
