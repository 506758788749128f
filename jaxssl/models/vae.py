"""Softplus MLPs for the deep generative SSL models of Kingma et al. 2014 (M1, M2)."""

import jax
import jax.numpy as jnp
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
