"""Layers the published recipes need and Flax lacks: weight-normalized dense, input noise."""

import math

import jax
import jax.numpy as jnp
from flax import nnx


def normal(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
  """jax.random.normal(key, shape), drawn flat and reshaped: the same numbers (threefry counts over
  the flat index; tests/test_consistency.py checks it), but XLA:CPU compiles a rank-4 draw (a conv
  kernel, a batch of images) several times slower than a flat one, ~2 s per conv at init."""
  return jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)


def normal_init(std: float):
  """jax.nn.initializers.normal(std), through `normal`."""
  return lambda key, shape, dtype=jnp.float32: normal(key, shape, dtype) * jnp.asarray(std, dtype)


class Fixed(nnx.Variable):
  """A weight set once (e.g. by data-dependent init) and never trained."""


class WNDense(nnx.Module):
  """Weight-normalized dense layer w = g·v/‖v‖ (Salimans & Kingma 2016), columns normalized.

  Matches openai/improved-gan `nn.DenseLayer`: v ~ N(0, init_std), g = 1 and trainable only when
  `train_scale` (the hidden layers of the Improved-GAN discriminator keep g fixed after
  data-dependent init), b trainable.
  """

  def __init__(
    self,
    din: int,
    dout: int,
    *,
    train_scale: bool,
    rngs: nnx.Rngs,
    init_std: float = 0.1,
    eps: float = 0.0,
  ):
    self.v = nnx.Param(init_std * jax.random.normal(rngs.params(), (din, dout)))
    self.g = (nnx.Param if train_scale else Fixed)(jnp.ones((dout,)))
    self.b = nnx.Param(jnp.zeros((dout,)))
    self.eps = eps

  def _direction(self) -> jax.Array:
    v = self.v[...]
    return v / jnp.sqrt(self.eps + jnp.sum(jnp.square(v), axis=0))

  def __call__(self, x: jax.Array) -> jax.Array:
    return x @ (self._direction() * self.g[...]) + self.b[...]

  def data_init(self, x: jax.Array) -> jax.Array:
    """Sets g, b so pre-activations on `x` have zero mean and unit variance; returns them."""
    t = x @ self._direction()
    mean = t.mean(0)
    std = jnp.sqrt(jnp.mean(jnp.square(t - mean), axis=0))
    self.g[...] = 1.0 / std
    self.b[...] = -mean / std
    return self(x)


def gaussian_noise(x: jax.Array, std: float, key: jax.Array | None) -> jax.Array:
  """Adds N(0, std²) noise; identity when key is None (evaluation) or std is 0."""
  if key is None or std == 0:
    return x
  return x + std * jax.random.normal(key, x.shape, x.dtype)


def noise_keys(key: jax.Array | None, n: int) -> list:
  """n keys for n noise draws, or n Nones when key is None (the deterministic network)."""
  return [None] * n if key is None else list(jax.random.split(key, n))
