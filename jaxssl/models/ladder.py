"""The Ladder network's MLP (Rasmus et al. 2015, Algorithm 1): encoder, decoder, combinators."""

import jax
import jax.numpy as jnp
from flax import nnx

from jaxssl.models.layers import Statistic, noise_keys

EPS = 1e-6


def batch_stats(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  mean = x.mean(0)
  return mean, jnp.sqrt(jnp.mean(jnp.square(x - mean), 0) + EPS)


class Combinator(nnx.Module):
  """The vanilla combinator g(z~, u) = (z~ - mu(u)) v(u) + mu(u), ten parameters per unit.

  mu(u) = a1 sigmoid(a2 u + a3) + a4 u + a5 and v(u) = a6 sigmoid(a7 u + a8) + a9 u + a10,
  initialized as the reference code (a2 = a7 = 1, the rest 0).
  """

  def __init__(self, size: int):
    init = jnp.zeros((10, size)).at[1].set(1.0).at[6].set(1.0)
    self.a = nnx.Param(init)

  def __call__(self, z_tilde: jax.Array, u: jax.Array) -> jax.Array:
    a = self.a[...]
    mu = a[0] * jax.nn.sigmoid(a[1] * u + a[2]) + a[3] * u + a[4]
    v = a[5] * jax.nn.sigmoid(a[6] * u + a[7]) + a[8] * u + a[9]
    return (z_tilde - mu) * v + mu


class Ladder(nnx.Module):
  """Encoder dims[0] -> ... -> dims[-1] with batch norm; decoder back down to the input."""

  def __init__(self, dims: tuple[int, ...], *, rngs: nnx.Rngs, bn_momentum: float = 0.99):
    init = nnx.initializers.variance_scaling(1.0, 'fan_in', 'normal')
    pairs = list(zip(dims[:-1], dims[1:]))
    self.W = nnx.List(
      [nnx.Linear(a, b, use_bias=False, kernel_init=init, rngs=rngs) for a, b in pairs]
    )
    self.V = nnx.List(
      [nnx.Linear(b, a, use_bias=False, kernel_init=init, rngs=rngs) for a, b in pairs]
    )
    self.beta = nnx.List([nnx.Param(jnp.zeros((b,))) for b in dims[1:]])
    self.gamma = nnx.Param(jnp.ones((dims[-1],)))  # only the softmax layer has a scale
    self.combinators = nnx.List([Combinator(d) for d in dims])
    self.running_mean = nnx.List([Statistic(jnp.zeros((b,))) for b in dims[1:]])
    self.running_std = nnx.List([Statistic(jnp.ones((b,))) for b in dims[1:]])
    self.bn_momentum = bn_momentum

  def _activation(self, l: int, z: jax.Array) -> jax.Array:
    """Layer l's output from its normalized z: ReLU, or the top layer's logits."""
    if l == len(self.W):
      return self.gamma[...] * (z + self.beta[l - 1][...])
    return jax.nn.relu(z + self.beta[l - 1][...])

  def encode(self, x: jax.Array, noise_std: float, key: jax.Array | None):
    """(logits, zs, means, stds) of the clean (key None) or corrupted path, batch statistics.

    zs[l] is the normalized (and, if corrupted, noisy) z of layer l, zs[0] the input; means and
    stds are the batch statistics of the pre-normalization z (0 and 1 for the input).
    """
    num = len(self.W)
    keys = noise_keys(key, num + 1)
    noise = lambda k, a: a if k is None else a + noise_std * jax.random.normal(k, a.shape)
    h = noise(keys[0], x)
    zs, means, stds = [h], [jnp.zeros(())], [jnp.ones(())]
    for l in range(1, num + 1):
      z_pre = self.W[l - 1](h)
      mean, std = batch_stats(z_pre)
      z = noise(keys[l], (z_pre - mean) / std)
      zs.append(z)
      means.append(mean)
      stds.append(std)
      h = self._activation(l, z)
    return h, zs, means, stds

  def decode(self, zs_tilde: list, logits_tilde: jax.Array) -> list:
    """Reconstructions z^ of every layer, top-down, from the corrupted path."""
    num = len(self.W)
    z_hat = [None] * (num + 1)
    for l in range(num, -1, -1):
      u = jax.nn.softmax(logits_tilde) if l == num else self.V[l](z_hat[l + 1])
      mean, std = batch_stats(u)
      z_hat[l] = self.combinators[l](zs_tilde[l], (u - mean) / std)
    return z_hat

  def update_running_stats(self, means: list, stds: list) -> None:
    m = self.bn_momentum
    for l in range(len(self.W)):
      self.running_mean[l][...] = m * self.running_mean[l][...] + (1 - m) * means[l + 1]
      self.running_std[l][...] = m * self.running_std[l][...] + (1 - m) * stds[l + 1]

  def __call__(self, x: jax.Array) -> jax.Array:
    """Evaluation: the clean path normalized with the running statistics."""
    h = x
    for l in range(1, len(self.W) + 1):
      z = (self.W[l - 1](h) - self.running_mean[l - 1][...]) / self.running_std[l - 1][...]
      h = self._activation(l, z)
    return h


def denoising_costs(zs: list, z_hat: list, means: list, stds: list) -> list:
  """Per-layer ||z - z^_BN||^2 / width, batch-averaged; z^_BN uses the clean batch statistics."""
  return [
    jnp.mean(jnp.sum(jnp.square(z - (zh - m) / s), -1)) / z.shape[-1]
    for z, zh, m, s in zip(zs, z_hat, means, stds)
  ]
