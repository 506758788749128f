"""Layers the published recipes need and Flax lacks: weight-normalized dense, input noise; and
BatchNorm with a statistics update that traces in constant time."""

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx

from jaxssl import xla


def normal(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
  """jax.random.normal(key, shape), drawn flat and reshaped: the same numbers (threefry counts over
  the flat index; tests/test_consistency.py checks it), but XLA:CPU compiles a rank-4 draw (a conv
  kernel, a batch of images) several times slower than a flat one, ~2 s per conv at init."""
  return jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)


def normal_init(std: float):
  """jax.nn.initializers.normal(std), through `normal`."""
  return lambda key, shape, dtype=jnp.float32: normal(key, shape, dtype) * jnp.asarray(std, dtype)


class Statistic(nnx.BatchStat):
  """A BatchStat whose whole-array assignment of a traced value is a plain replace.

  nnx's `Variable.__setitem__` probes `getattr(value, 'sharding', None)`; on a tracer JAX builds
  that AttributeError's message by walking every equation traced so far (jax-ml/jax#40041), so
  each batch-norm update cost time linear in the trace: tracing ReMixMatch's WRN-28-2 step took
  ~45 s, 35 of them here. A tracer has no sharding to keep; concrete values take nnx's path."""

  def __setitem__(self, key, value):
    old = self.get_value()
    if (
      key is Ellipsis
      and isinstance(value, jax.core.Tracer)
      and (value.shape, value.dtype) == (old.shape, old.dtype)
    ):
      self.set_value(value)
    else:
      super().__setitem__(key, value)


class BatchNorm(nnx.BatchNorm):
  """nnx.BatchNorm (the same arguments, state and numbers), its running statistics `Statistic`s."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.mean = Statistic(self.mean.get_value())
    self.var = Statistic(self.var.get_value())


class Conv(nnx.Conv):
  """nnx.Conv (the same arguments, parameters and numbers) that, where jaxssl's compiled programs
  run convolutions on YNNPACK (XLA:CPU without the option of jaxssl.xla), convolves a batch of
  more than `chunk` images in equal chunks of at most `chunk`, and sums its weight gradient over
  chunks of at most `grad_chunk` images.

  YNNPACK's convolutions slow down per image as the batch grows (WRN-28-2's training pass: ~8 ms
  an image at 32, ~19 at 960 on a 2-core machine), which chunks of 64 undo (a 960-image pass 2.5x
  faster). Weight gradients suffer most: over 32 maps of 32x32x32 one takes ~3.5x the forward
  convolution's time, summed over chunks of 8 images ~1.5x (RESULTS.md). Each image's output and
  input gradient are computed as before; a weight gradient is summed chunk by chunk, so it differs
  from the unchunked one by float rounding. Batch norm, between the convolutions, still sees the
  whole batch. XLA's own threaded convolution (jaxssl.xla.jit on CPU), GPUs and TPUs keep the
  single convolution and XLA's gradient: chunks made the first no faster (RESULTS.md)."""

  def __init__(self, *args, chunk: int | None = None, grad_chunk: int | None = None, **kwargs):
    if chunk or grad_chunk:
      kwargs['conv_general_dilated'] = _cpu_convolution(chunk, grad_chunk)
    super().__init__(*args, **kwargs)


# A layer's weight-gradient convolutions are unrolled (in a lax.scan XLA:CPU ran each ~100x
# slower); more than this many per layer lengthen compiles more than they save: a 960-image WRN
# pass with 120 (15 chunks of 64, each in 8) compiled in 112 s instead of 26, for 16 % less time.
MAX_GRAD_CONVS = 16


@functools.cache  # one function per setting: nnx keeps it in the layer's graph definition
def _cpu_convolution(chunk: int | None, grad_chunk: int | None):
  """lax.conv_general_dilated, chunked on CPU as Conv describes. Chunk j of c holds images j,
  j + c, j + 2c, ...: a batch sharded over devices in contiguous blocks stays sharded the same way
  (contiguous chunks crossed the blocks: ~90 collective permutes a convolution at 960 images on 8
  devices). Decided when traced, for the backend the step runs on (jax.lax.platform_dependent
  would trace and differentiate both versions: a WRN step's trace took 4x as long)."""

  def conv(lhs, rhs, window_strides, padding, **kwargs):
    plain = functools.partial(jax.lax.conv_general_dilated, **kwargs)
    plain = functools.partial(plain, window_strides=window_strides, padding=padding)
    if not xla.convolutions_on_ynnpack():
      return plain(lhs, rhs)
    n = lhs.shape[0]
    count = _chunk_count(n, chunk) if chunk else 1
    per = n // count
    # Over a sharded batch each chunk's partial gradient is all-reduced: XLA combines them into
    # one collective of up to MAX_GRAD_CONVS kernels' bytes.
    budget = MAX_GRAD_CONVS // count
    grads = _chunk_count(per, max(grad_chunk, -(-per // budget))) if grad_chunk and budget else 1
    one = plain if grads == 1 else _weight_grad_in_chunks(plain, grads)
    if count == 1:
      return one(lhs, rhs)
    x = lhs.reshape(per, count, *lhs.shape[1:])
    y = jnp.stack([one(x[:, j], rhs) for j in range(count)], axis=1)
    return y.reshape(n, *y.shape[2:])

  return conv


def _weight_grad_in_chunks(plain, count: int):
  """plain(x, k) whose gradient for k is the sum of `count` strided chunks' gradients."""

  @jax.custom_vjp
  def f(x, k):
    return plain(x, k)

  def fwd(x, k):
    return plain(x, k), (x, k)

  def bwd(res, g):
    x, k = res
    dx = jax.vjp(lambda x: plain(x, k), x)[1](g)[0]
    xs, gs = (a.reshape(a.shape[0] // count, count, *a.shape[1:]) for a in (x, g))
    partial = lambda j: jax.vjp(lambda k: plain(xs[:, j], k), k)[1](gs[:, j])[0]
    # Summed in float32 (or wider): a bfloat16 kernel's gradient is rounded once, at the end.
    acc = jnp.promote_types(k.dtype, jnp.float32)
    dk = sum(partial(j).astype(acc) for j in range(count))
    return dx, dk.astype(k.dtype)

  f.defvjp(fwd, bwd)
  return f


def _chunk_count(n: int, chunk: int) -> int:
  """The fewest equal chunks of at most `chunk` images that `n` splits into, or 1 (no chunking)
  when those would hold fewer than chunk / 2 (e.g. a prime n)."""
  if n <= chunk:
    return 1
  count = next(c for c in range(-(-n // chunk), n + 1) if n % c == 0)
  return count if n // count >= chunk // 2 else 1


class Fixed(nnx.Variable):
  """A weight set once (e.g. by data-dependent init) and never trained."""


class WNDense(nnx.Module):
  """Weight-normalized dense layer w = g·v/‖v‖ (Salimans & Kingma 2016), columns normalized.

  Matches openai/improved-gan `nn.DenseLayer`: v ~ N(0, 0.1), g = 1 and trainable only when
  `train_scale` (the hidden layers of the Improved-GAN discriminator keep g fixed after
  data-dependent init), b trainable. With `kernel_init=glorot_uniform` and eps=1e-6 it is the
  generator's output layer there, `nn.l2normalize` around a Lasagne DenseLayer.
  """

  def __init__(
    self,
    din: int,
    dout: int,
    *,
    train_scale: bool,
    rngs: nnx.Rngs,
    kernel_init=None,
    eps: float = 0.0,
  ):
    # Under weight norm only v's direction counts, but its scale does too: Adam moves each entry by
    # ~lr a step, so a larger v rotates more slowly.
    kernel_init = kernel_init or normal_init(0.1)
    self.v = nnx.Param(kernel_init(rngs.params(), (din, dout)))
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


def _windows(y: jax.Array) -> jax.Array:
  n, h, w, c = y.shape
  return y[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)


@jax.custom_vjp
def _max_pool_2x2(y: jax.Array) -> jax.Array:
  return _windows(y).max(axis=(2, 4))


def _max_pool_fwd(y):
  return _max_pool_2x2(y), y


def _max_pool_bwd(y, g):
  win = _windows(y)
  n, h2, _, w2, _, c = win.shape
  w00, w01, w10, w11 = (win[:, :, i, :, j] for i in (0, 1) for j in (0, 1))
  # The first maximum of a window in row-major order takes the gradient, as XLA's
  # select-and-scatter (the gradient of reduce_window max) does; ties are common on digits,
  # whose blank background gives equal activations. Decided from the window alone, not by
  # comparing with the forward's maximum: XLA may recompute y inside this fusion a rounding
  # away from the y that maximum came from, and then no element would equal it.
  e00 = (w00 >= w01) & (w00 >= w10) & (w00 >= w11)
  e01 = ~e00 & (w01 >= w10) & (w01 >= w11)
  e10 = ~(e00 | e01) & (w10 >= w11)
  e11 = ~(e00 | e01 | e10)
  zero = jnp.zeros((), g.dtype)
  top = jnp.stack([jnp.where(e00, g, zero), jnp.where(e01, g, zero)], axis=3)
  bottom = jnp.stack([jnp.where(e10, g, zero), jnp.where(e11, g, zero)], axis=3)
  dy = jnp.stack([top, bottom], axis=2).reshape(n, 2 * h2, 2 * w2, c)
  pad = ((0, 0), (0, y.shape[1] - 2 * h2), (0, y.shape[2] - 2 * w2), (0, 0))
  return (jnp.pad(dy, pad),)


_max_pool_2x2.defvjp(_max_pool_fwd, _max_pool_bwd)


def max_pool_2x2(y: jax.Array) -> jax.Array:
  """2x2 max-pooling of NHWC maps with stride 2 (VALID), the values and the gradient of
  `nnx.max_pool(y, (2, 2), (2, 2))` bit for bit. On CPU it is computed from a reshape: XLA:CPU
  runs reduce_window and its select-and-scatter gradient as slow loops (~20 % of the SmallCNN's
  op time at 224 images); other platforms keep the native ops."""
  native = lambda y: nnx.max_pool(y, (2, 2), (2, 2))
  return jax.lax.platform_dependent(y, cpu=_max_pool_2x2, default=native)
