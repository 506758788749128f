"""The deep generative SSL models of Kingma et al. 2014: M1 and M2 (softplus MLPs) and M2's
variational bounds, L(x, y) for labeled and U(x) for unlabeled examples."""

import jax
import jax.numpy as jnp
import optax
from flax import nnx


class MLP(nnx.Module):
  """din -> widths (softplus) -> dout, linear output."""

  def __init__(self, din: int, widths: tuple[int, ...], dout: int, *, rngs: nnx.Rngs):
    dims = (din, *widths, dout)
    self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(dims[:-1], dims[1:])])

  def __call__(self, x: jax.Array) -> jax.Array:
    for layer in self.layers[:-1]:
      x = jax.nn.softplus(layer(x))
    return self.layers[-1](x)


class Gaussian(nnx.Module):
  """An MLP whose output is the mean and log-variance of a diagonal Gaussian."""

  def __init__(self, din: int, widths: tuple[int, ...], dout: int, *, rngs: nnx.Rngs):
    self.net = MLP(din, widths, 2 * dout, rngs=rngs)

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    mean, log_var = jnp.split(self.net(x), 2, axis=-1)
    return mean, log_var


class M1(nnx.Module):
  """VAE on pixels: q(z|x) and Bernoulli p(x|z)."""

  def __init__(self, dx: int, dz: int, widths: tuple[int, ...], *, rngs: nnx.Rngs):
    self.encoder = Gaussian(dx, widths, dz, rngs=rngs)
    self.decoder = MLP(dz, widths[::-1], dx, rngs=rngs)


class M2(nnx.Module):
  """q(y|x) classifier, q(z|x,y) encoder and p(x|y,z) decoder (Bernoulli logits or Gaussian)."""

  def __init__(
    self,
    dx: int,
    dz: int,
    num_classes: int,
    widths: tuple[int, ...],
    *,
    gaussian_x: bool,
    rngs: nnx.Rngs,
  ):
    self.classifier = MLP(dx, widths, num_classes, rngs=rngs)
    self.encoder = Gaussian(dx + num_classes, widths, dz, rngs=rngs)
    self.decoder = (Gaussian if gaussian_x else MLP)(dz + num_classes, widths, dx, rngs=rngs)


def gaussian_kl(mean, log_var):
  """KL(N(mean, exp(log_var)) || N(0, I)), summed over the last axis."""
  return 0.5 * jnp.sum(jnp.exp(log_var) + jnp.square(mean) - 1.0 - log_var, -1)


def bernoulli_log_prob(logits, x):
  return -jnp.sum(optax.sigmoid_binary_cross_entropy(logits, x), -1)


def gaussian_log_prob(mean, log_var, x, mask=None):
  """Diagonal Gaussian log-density, summed over the last axis (over the units where mask is 1)."""
  per_unit = -0.5 * (jnp.log(2 * jnp.pi) + log_var + jnp.square(x - mean) / jnp.exp(log_var))
  return jnp.sum(per_unit if mask is None else per_unit * mask, -1)


def m1_bound(model: M1, x, eps):
  """Per image: KL(q(z1|x) || p(z1)) - log p(x|z1), one z1 = mean + std * eps."""
  mean, log_var = model.encoder(x)
  z = mean + jnp.exp(0.5 * log_var) * eps
  return gaussian_kl(mean, log_var) - bernoulli_log_prob(model.decoder(z), x)


def labeled_bound(model: M2, x, y_onehot, eps, gaussian_x: bool, mask=None):
  """L(x, y) = -E_q(z|x,y)[log p(x|y,z) + log p(y) + log p(z) - log q(z|x,y)].

  One reparameterized sample z = mean + std * eps; the KL term in closed form. `mask` (Gaussian x
  only) leaves dropped input units out of the likelihood.
  """
  mean, log_var = model.encoder(jnp.concatenate([x, y_onehot], -1))
  z = mean + jnp.exp(0.5 * log_var) * eps
  out = model.decoder(jnp.concatenate([z, y_onehot], -1))
  log_px = gaussian_log_prob(*out, x, mask) if gaussian_x else bernoulli_log_prob(out, x)
  log_py = -jnp.log(y_onehot.shape[-1])
  return -(log_px + log_py - gaussian_kl(mean, log_var))


def unlabeled_bound(model: M2, x, eps, gaussian_x: bool, mask=None):
  """U(x) = sum_y q(y|x) L(x,y) - H(q(y|x)), every class enumerated; also q(y|x)'s logits.

  Every class of an example shares its noise eps (common random numbers), so U(x) equals
  L(x, c) exactly when q(y|x) is one-hot on c.
  """
  logits = model.classifier(x)
  k = logits.shape[-1]
  ys = jnp.tile(jnp.eye(k), (x.shape[0], 1))  # (B*K, K): every class for each example
  rep = lambda a: jnp.repeat(a, k, 0)
  bound = labeled_bound(model, rep(x), ys, rep(eps), gaussian_x, mask).reshape(-1, k)
  q = jax.nn.softmax(logits)
  entropy = -jnp.sum(q * jax.nn.log_softmax(logits), -1)
  return jnp.sum(q * bound, -1) - entropy, logits
