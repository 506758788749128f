"""The MNIST MLPs of Salimans et al. 2016 (openai/improved-gan train_mnist_feature_matching.py)."""

import math

import jax
from flax import nnx

from jaxssl.models.layers import BatchNorm, WNDense, gaussian_noise, noise_keys, normal_init


class Discriminator(nnx.Module):
  """784-1000-500-250-250-250-K weight-normalized ReLU MLP with Gaussian noise on every input.

  Returns (logits, features): features are the last hidden layer's activations (before its noise),
  the layer the feature-matching generator loss matches.
  """

  def __init__(
    self,
    in_features: int,
    num_classes: int,
    *,
    rngs: nnx.Rngs,
    widths=(1000, 500, 250, 250, 250),
    input_noise=0.3,
    hidden_noise=0.5,
  ):
    dims = (in_features, *widths)
    self.hidden = nnx.List(
      [WNDense(a, b, train_scale=False, rngs=rngs) for a, b in zip(dims[:-1], dims[1:])]
    )
    self.out = WNDense(widths[-1], num_classes, train_scale=True, rngs=rngs)
    self.input_noise = input_noise
    self.hidden_noise = hidden_noise

  def __call__(self, x: jax.Array, key: jax.Array | None = None):
    """`key=None` is the deterministic (evaluation) network, as Lasagne's deterministic=True."""
    keys = noise_keys(key, len(self.hidden) + 1)
    h = gaussian_noise(x.reshape(x.shape[0], -1), self.input_noise, keys[0])
    for layer, k in zip(self.hidden, keys[1:]):
      features = jax.nn.relu(layer(h))
      h = gaussian_noise(features, self.hidden_noise, k)
    return self.out(h), features

  def data_init(self, x: jax.Array, key: jax.Array | None = None) -> None:
    """Data-dependent init of every layer on a batch (the paper: 500 training images).

    With a key the noise is on, as in the paper's code, so the fixed hidden scales normalize the
    noisy training-mode activations.
    """
    keys = noise_keys(key, len(self.hidden) + 1)
    h = gaussian_noise(x.reshape(x.shape[0], -1), self.input_noise, keys[0])
    for layer, k in zip(self.hidden, keys[1:]):
      h = gaussian_noise(jax.nn.relu(layer.data_init(h)), self.hidden_noise, k)
    self.out.data_init(h)


# The generator's output-layer directions: the paper code's (Lasagne's default DenseLayer W) or the
# discriminator's N(0, 0.1²).
OUTPUT_INITS = {'glorot_uniform': nnx.initializers.glorot_uniform(), 'normal': normal_init(0.1)}


class Generator(nnx.Module):
  """z ~ U(0,1)^z_dim → 500 → 500 (softplus, batch norm) → sigmoid image, weight-normed output.

  Batch norm always uses the statistics of the batch being generated, as in the paper's code.
  """

  def __init__(
    self,
    out_shape: tuple[int, ...],
    *,
    rngs: nnx.Rngs,
    z_dim=100,
    widths=(500, 500),
    out_init: str = 'glorot_uniform',
  ):
    """`out_init`: the output layer's directions v Glorot-uniform, as the paper's Lasagne
    DenseLayer (std ≈ 0.039 for 500 → 784), or 'normal': N(0, 0.1²) as the discriminator's."""
    dims = (z_dim, *widths)
    glorot = nnx.initializers.glorot_uniform()
    self.dense = nnx.List(
      [
        nnx.Linear(a, b, use_bias=False, kernel_init=glorot, rngs=rngs)
        for a, b in zip(dims[:-1], dims[1:])
      ]
    )
    self.norm = nnx.List(
      [
        BatchNorm(
          b, use_scale=False, epsilon=1e-6, momentum=0.9, use_running_average=False, rngs=rngs
        )
        for b in widths
      ]
    )
    self.out = WNDense(
      widths[-1],
      math.prod(out_shape),
      train_scale=True,
      rngs=rngs,
      kernel_init=OUTPUT_INITS[out_init],
      eps=1e-6,
    )
    self.out_shape = tuple(out_shape)

  def __call__(self, z: jax.Array) -> jax.Array:
    h = z
    for dense, norm in zip(self.dense, self.norm):
      h = jax.nn.softplus(norm(dense(h)))
    return jax.nn.sigmoid(self.out(h)).reshape(z.shape[0], *self.out_shape)
