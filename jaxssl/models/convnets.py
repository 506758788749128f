"""Convolutional classifiers of the discriminative SSL methods.

`WideResNet` is the WRN-28-k of google-research/fixmatch (libml/models.py `ResNet`), the network
behind the FixMatch/MixMatch/UDA tables: a 16-filter stem, then 3 groups of 4 pre-activation
residual blocks of 16k, 32k, 64k filters, leaky ReLU 0.1, batch norm of momentum 0.999.
`SmallCNN` is a few conv blocks for 28x28 grayscale digits, so CPU runs on MNIST are quick.
Both take float images in [0, 1], NHWC, and return float32 logits; `key` is accepted for the
interface and unused (the recipes use no dropout). `dtype=jnp.bfloat16` runs the convolutions
and activations in bfloat16; parameters, batch-norm statistics, the pooled features and the
dense head stay float32.
"""

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx

from jaxssl.models import layers


def _conv(
  cin: int, cout: int, k: int, stride: int, rngs: nnx.Rngs, dtype=None, chunk=None, grad_chunk=None
) -> nnx.Conv:
  # fixmatch's conv_args: N(0, sqrt(2 / (k·k·cout))), He init over fan-out; TF convs have biases.
  init = layers.normal_init(math.sqrt(2.0 / (k * k * cout)))
  return layers.Conv(
    cin,
    cout,
    (k, k),
    stride,
    padding='SAME',
    kernel_init=init,
    dtype=dtype,
    rngs=rngs,
    chunk=chunk,
    grad_chunk=grad_chunk,
  )


def _bn(n: int, momentum: float, rngs: nnx.Rngs, dtype=None) -> layers.BatchNorm:
  # Statistics are computed and kept in float32 whatever `dtype` (the output's) is; TF's epsilon.
  return layers.BatchNorm(n, momentum=momentum, epsilon=1e-3, dtype=dtype, rngs=rngs)


class _Residual(nnx.Module):
  def __init__(
    self,
    cin,
    cout,
    stride,
    activate_before_residual,
    *,
    bn_momentum,
    slope,
    rngs,
    dtype=None,
    cpu_chunk=None,
    cpu_grad_chunk=None,
  ):
    self.bn1, self.bn2 = _bn(cin, bn_momentum, rngs, dtype), _bn(cout, bn_momentum, rngs, dtype)
    conv = functools.partial(
      _conv, rngs=rngs, dtype=dtype, chunk=cpu_chunk, grad_chunk=cpu_grad_chunk
    )
    self.conv1 = conv(cin, cout, 3, stride)
    self.conv2 = conv(cout, cout, 3, 1)
    self.shortcut = conv(cin, cout, 1, stride) if cin != cout else None
    self.activate_before_residual = activate_before_residual
    self.act = functools.partial(jax.nn.leaky_relu, negative_slope=slope)

  def __call__(self, x0, train: bool):
    x = self.act(self.bn1(x0, use_running_average=not train))
    if self.activate_before_residual:
      x0 = x
    x = self.conv1(x)
    x = self.conv2(self.act(self.bn2(x, use_running_average=not train)))
    if self.shortcut is not None:
      x0 = self.shortcut(x0)
    return x0 + x


class WideResNet(nnx.Module):
  """WRN-28-k: `filters` = 16·k (32 for WRN-28-2, 128 for WRN-28-8)."""

  def __init__(
    self,
    in_channels: int,
    num_classes: int,
    *,
    rngs: nnx.Rngs,
    filters: int = 32,
    scales: int = 3,
    repeat: int = 4,
    bn_momentum: float = 0.999,
    slope: float = 0.1,
    dtype=None,
    cpu_chunk: int | None = 64,
    cpu_grad_chunk: int | None = 8,
  ):
    """`cpu_chunk`: where convolutions run on YNNPACK (an XLA:CPU without jaxssl.xla's option),
    every convolution takes a larger batch in chunks of at most this many images (layers.Conv;
    None: one convolution). `cpu_grad_chunk`: there, each weight gradient is summed over chunks
    of at most this many images (None: XLA's one convolution)."""
    args = dict(
      bn_momentum=bn_momentum,
      slope=slope,
      rngs=rngs,
      dtype=dtype,
      cpu_chunk=cpu_chunk,
      cpu_grad_chunk=cpu_grad_chunk,
    )
    self.stem = _conv(in_channels, 16, 3, 1, rngs, dtype, cpu_chunk, cpu_grad_chunk)
    blocks, cin = [], 16
    for scale in range(scales):
      width = filters << scale
      blocks.append(_Residual(cin, width, 2 if scale else 1, scale == 0, **args))
      blocks += [_Residual(width, width, 1, False, **args) for _ in range(repeat - 1)]
      cin = width
    self.blocks = nnx.List(blocks)
    self.bn = _bn(cin, bn_momentum, rngs, dtype)
    self.head = nnx.Linear(  # float32: it reads the float32 average
      cin, num_classes, kernel_init=jax.nn.initializers.glorot_normal(), rngs=rngs
    )
    self.slope = slope
    self.num_features = cin

  def features(self, x: jax.Array, train: bool = False) -> jax.Array:
    """The globally pooled features the classifier reads (and SimMatch's, ReMixMatch's heads)."""
    y = self.stem(2.0 * x - 1.0)
    for block in self.blocks:
      y = block(y, train)
    y = jax.nn.leaky_relu(self.bn(y, use_running_average=not train), self.slope)
    return jnp.mean(y, axis=(1, 2), dtype=jnp.float32)

  def __call__(self, x: jax.Array, train: bool = False, key=None) -> jax.Array:
    return self.head(self.features(x, train))


class SmallCNN(nnx.Module):
  """Per width w: conv3x3(w)-BN-lReLU, with a 2x2 max-pool after the first two (28 -> 14 -> 7);
  then a dense layer over the global average (`head='gap'`) or over the whole map ('flatten').

  (16, 32, 64) with 'gap' has 24k parameters and ~2M multiply-adds per 28x28 image. A flatten
  head keeps where on the digit a stroke is, which averaging throws away.
  """

  def __init__(
    self,
    in_channels: int,
    num_classes: int,
    *,
    rngs: nnx.Rngs,
    widths: tuple[int, ...] = (16, 32, 64),
    head: str = 'gap',
    bn_momentum: float = 0.99,
    slope: float = 0.1,
    image_size: int = 28,
    dtype=None,
    cpu_grad_chunk: int | None = 8,
  ):
    """`cpu_grad_chunk`: as WideResNet's (224 digits on YNNPACK: the training pass 72.9 -> 58.7
    ms, one side-by-side run, RESULTS.md)."""
    convs, bns, cin = [], [], in_channels
    for w in widths:
      convs.append(_conv(cin, w, 3, 1, rngs, dtype, grad_chunk=cpu_grad_chunk))
      bns.append(_bn(w, bn_momentum, rngs, dtype))
      cin = w
    self.convs, self.bns = nnx.List(convs), nnx.List(bns)
    init = jax.nn.initializers.glorot_normal()
    side = image_size >> min(2, len(widths) - 1)
    features = cin * side * side if head == 'flatten' else cin
    self.head = nnx.Linear(features, num_classes, kernel_init=init, rngs=rngs)
    self.flatten, self.slope = head == 'flatten', slope
    self.num_features = features

  def features(self, x: jax.Array, train: bool = False) -> jax.Array:
    """What the dense head reads: the flattened map or its global average."""
    y = 2.0 * x - 1.0
    for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
      y = jax.nn.leaky_relu(bn(conv(y), use_running_average=not train), self.slope)
      if i < min(2, len(self.convs) - 1):
        y = layers.max_pool_2x2(y)
    if self.flatten:
      return y.reshape(len(y), -1).astype(jnp.float32)
    return jnp.mean(y, axis=(1, 2), dtype=jnp.float32)

  def __call__(self, x: jax.Array, train: bool = False, key=None) -> jax.Array:
    return self.head(self.features(x, train))
