"""CTAugment (Berthelot et al. 2020, ReMixMatch; FixMatch's default strong augmentation) on device.

A transcription of google-research/fixmatch libml/ctaugment.py into pure, jittable functions whose
only state is the array of bin weights (`rates`), kept in the train state and checkpointed:

- 19 ops, each with 0-2 magnitude parameters in [0, 1], each parameter with its own bins (17,
  posterize 8, rescale's resampling method 6), every weight starting at 1.
- A training view draws `depth` ops uniformly; each parameter draws a bin with probability
  ∝ rate_to_p(weights), p = w + (1 − decay), normalised by its maximum, zeroed below the threshold
  `th`, then a uniform magnitude inside the bin. FixMatch then applies Cutout at level 1.
- A probe view of each labeled image draws `depth` ops with uniform magnitudes. After the step,
  the model's softmax p on the probe gives proximity = 1 − ½‖p − onehot(y)‖₁, and each bin the
  probe used moves towards it: w ← decay·w + (1 − decay)·proximity, image after image.

Magnitudes map to effects as the official PIL ops do (rotate ±45°, shear ±0.3, enhance factors
0.1-1.9, posterize 1-8 bits, ...), including translate_x/y's offset of at most 0.3 pixel (PIL's
AFFINE coefficients are in pixels), with nearest-neighbour resampling and black fill as PIL's
defaults. Deviations: rescale resamples bilinearly whichever of PIL's six filters its second
parameter picks (the parameter and its bins are still drawn and learned); images are floats in
[0, 1] rather than PIL's uint8, so the colour ops do not round to 8 bits in between.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxssl.data import augment

GRAY = 127 / 255  # the official Cutout's fill


def _blend(x, other, level):  # PIL Image.blend(x, other, level)
  return x + level * (other - x)


def _enhance(degenerate, x, level):  # PIL ImageEnhance at factor 0.1 + 1.9·level
  return augment._blend(degenerate, x, 0.1 + 1.9 * level)


def _filter(x, kernel):
  """PIL ImageFilter.Kernel: the kernel over the interior, the border pixels left as they are."""
  k = kernel.shape[0]
  r = k // 2
  h, w, _ = x.shape
  acc = sum(
    kernel[dy, dx] * x[dy : h - k + 1 + dy, dx : w - k + 1 + dx]
    for dy in range(k)
    for dx in range(k)
    if kernel[dy, dx]
  )
  return x.at[r:-r, r:-r].set(jnp.clip(acc / float(kernel.sum()), 0.0, 1.0))


_BLUR = np.pad(np.zeros((3, 3)), 1, constant_values=1.0)  # ImageFilter.BLUR: the 16-pixel ring
_SMOOTH = np.array([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]])  # ImageFilter.SMOOTH


def _quantize(x):
  return jnp.round(x * 255).astype(jnp.int32)


def autocontrast(x, a, b, key):
  return augment.autocontrast(x, a, 1.0)


def blur(x, a, b, key):
  return _blend(x, _filter(x, _BLUR), a)


def brightness(x, a, b, key):
  return _enhance(jnp.zeros_like(x), x, a)


def color(x, a, b, key):
  return _enhance(augment._gray(x), x, a)


def contrast(x, a, b, key):
  return _enhance(jnp.mean(augment._gray(x)), x, a)


def cutout(x, a, b, key):
  """A square of half-side (1 + int(level·min(H, W)·0.499)) // 2 around a random pixel."""
  h, w, _ = x.shape
  half = (1 + jnp.floor(a * min(h, w) * 0.499).astype(jnp.int32)) // 2
  cy, cx = jax.random.randint(key, (2,), 0, jnp.array([h, w]))
  rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
  inside = (rows >= cy - half) & (rows < cy + half) & (cols >= cx - half) & (cols < cx + half)
  return jnp.where(inside[..., None], GRAY, x)


def equalize(x, a, b, key):
  return augment.equalize(x, a, 1.0)


def invert(x, a, b, key):
  return _blend(x, 1.0 - x, a)


def identity(x, a, b, key):
  return x


def posterize(x, a, b, key):
  shift = 8 - (1 + jnp.floor(a * 7.999).astype(jnp.int32))
  return jnp.left_shift(jnp.right_shift(_quantize(x), shift), shift) / 255.0


def sharpness(x, a, b, key):
  return _enhance(_filter(x, _SMOOTH), x, a)


def smooth(x, a, b, key):
  return _blend(x, _filter(x, _SMOOTH), a)


def solarize(x, a, b, key):
  v = _quantize(x)
  return jnp.where(v >= jnp.floor(a * 255.999).astype(jnp.int32), 255 - v, v) / 255.0


# Geometric ops as PIL's inverse maps in (row, col) pixel-index coordinates: the output pixel o
# samples the input at matrix·o + offset. PIL maps pixel centres, (x + ½, y + ½).
def _rotate(a, b, h, w):
  angle = jnp.deg2rad(jnp.round((2 * a - 1) * 45))  # PIL: int(np.round(...)) degrees, CCW
  c, s = jnp.cos(angle), jnp.sin(angle)
  m = jnp.array([[c, s], [-s, c]])
  centre = jnp.array([h / 2 - 0.5, w / 2 - 0.5])
  return m, centre - m @ centre


def _shear_x(a, b, h, w):  # AFFINE (1, s, 0, 0, 1, 0): x_in = x + s·y
  s = (2 * a - 1) * 0.3
  return jnp.array([[1.0, 0.0], [s, 1.0]]), jnp.array([0.0, s * 0.5])


def _shear_y(a, b, h, w):  # AFFINE (1, 0, 0, s, 1, 0): y_in = s·x + y
  s = (2 * a - 1) * 0.3
  return jnp.array([[1.0, s], [0.0, 1.0]]), jnp.array([s * 0.5, 0.0])


def _translate_x(a, b, h, w):  # AFFINE (1, 0, d, 0, 1, 0): d pixels, |d| ≤ 0.3
  return jnp.eye(2), jnp.array([0.0, (2 * a - 1) * 0.3])


def _translate_y(a, b, h, w):
  return jnp.eye(2), jnp.array([(2 * a - 1) * 0.3, 0.0])


def _rescale(a, b, h, w):
  """Crop (s·W, s·H, W(1−s), H(1−s)), s = a/4, rounded as PIL's crop, resized back to (W, H)."""
  s = a * 0.25
  top, left = jnp.round(s * h), jnp.round(s * w)
  bottom, right = jnp.round(h * (1 - s)), jnp.round(w * (1 - s))
  sy, sx = (bottom - top) / h, (right - left) / w
  return jnp.diag(jnp.array([sy, sx])), jnp.array([top + 0.5 * sy - 0.5, left + 0.5 * sx - 0.5])


def _no_warp(a, b, h, w):
  return jnp.eye(2), jnp.zeros(2)


def _warp(x, matrix2, offset, order):
  return augment.affine(x, matrix2, offset, order=order, fill=0.0)


class Op(NamedTuple):
  name: str
  bins: tuple[int, ...]  # bins of each magnitude parameter
  pixels: object  # (x, a, b, key) -> x, or None for a warp
  warp: object = None  # (a, b, h, w) -> (matrix, offset)
  order: int = 0  # warp interpolation: 0 nearest (PIL's default), 1 bilinear


# The official registration order: the index of an op is its row in `rates`.
OPS = (
  Op('autocontrast', (17,), autocontrast),
  Op('blur', (17,), blur),
  Op('brightness', (17,), brightness),
  Op('color', (17,), color),
  Op('contrast', (17,), contrast),
  Op('cutout', (17,), cutout),
  Op('equalize', (17,), equalize),
  Op('invert', (17,), invert),
  Op('identity', (), identity),
  Op('posterize', (8,), posterize),
  Op('rescale', (17, 6), None, _rescale, order=1),
  Op('rotate', (17,), None, _rotate),
  Op('sharpness', (17,), sharpness),
  Op('shear_x', (17,), None, _shear_x),
  Op('shear_y', (17,), None, _shear_y),
  Op('smooth', (17,), smooth),
  Op('solarize', (17,), solarize),
  Op('translate_x', (17,), None, _translate_x),
  Op('translate_y', (17,), None, _translate_y),
)
NAMES = tuple(op.name for op in OPS)
MAX_BINS, MAX_PARAMS = 17, 2
# (op, param): how many bins; 0 where the op has no such parameter.
NUM_BINS = np.array([[*op.bins, *(0,) * (MAX_PARAMS - len(op.bins))] for op in OPS], np.int32)


class Config(NamedTuple):
  depth: int = 2  # ops per view (official flag adepth)
  threshold: float = 0.8  # bins whose normalised weight is below it are never drawn (ath)
  decay: float = 0.99  # of the bin weights (adecay)


def init_rates() -> jax.Array:
  """Every bin weight at 1 (the padding past an op's bins is never read)."""
  return jnp.ones((len(OPS), MAX_PARAMS, MAX_BINS), jnp.float32)


def _valid(num_bins):
  return jnp.arange(MAX_BINS) < num_bins[..., None]


def rate_to_p(rates, cfg: Config):
  """The official rate_to_p for every (op, param) at once; 0 past each one's bins."""
  valid = _valid(NUM_BINS)
  p = jnp.where(valid, rates + (1 - cfg.decay), 0.0)
  p = p / jnp.max(p, -1, keepdims=True)
  return jnp.where(p < cfg.threshold, 0.0, p)


def sample_policy(rates, key, cfg: Config, probe: bool):
  """One image's policy: (op indices (depth,), magnitudes (depth, MAX_PARAMS)). Probe magnitudes
  are uniform; training ones come from a bin drawn by rate_to_p, uniform inside it."""
  k_op, k_bin, k_u = jax.random.split(key, 3)
  ops = jax.random.randint(k_op, (cfg.depth,), 0, len(OPS))
  u = jax.random.uniform(k_u, (cfg.depth, MAX_PARAMS))
  if probe:
    return ops, u
  p = rate_to_p(rates, cfg)[ops]  # (depth, params, bins)
  logits = jnp.log(jnp.where(p > 0, p, 1e-30))
  bins = jax.random.categorical(k_bin, logits)  # ∝ p / p.sum()
  num_bins = jnp.asarray(NUM_BINS)[ops]
  return ops, jnp.where(num_bins > 0, (bins + u) / jnp.maximum(num_bins, 1), u)


def _apply_op(x, op, levels, key):
  """One op; every pixel op runs under vmap (lax.switch), the warps once each per interpolation."""
  h, w, _ = x.shape
  a, b = levels[0], levels[1]
  pixel_fns = [op_.pixels or identity for op_ in OPS]
  pixel = jax.lax.switch(op, pixel_fns, x, a, b, key)
  out = pixel
  for order in (0, 1):
    maps = [o.warp if (o.warp and o.order == order) else _no_warp for o in OPS]
    matrix, offset = jax.lax.switch(op, [functools.partial(f, h=h, w=w) for f in maps], a, b)
    uses = jnp.array([o.warp is not None and o.order == order for o in OPS])[op]
    out = jnp.where(uses, _warp(x, matrix, offset, order), out)
  return out


def apply_policy(x, ops, levels, key, *, cutout_level=None):
  """One image through its policy, then (FixMatch's strong view) Cutout at `cutout_level`."""
  keys = jax.random.split(key, len(ops) + 1)
  for i in range(len(ops)):
    x = _apply_op(x, ops[i], levels[i], keys[i])
  if cutout_level is not None:
    x = cutout(x, cutout_level, 0.0, keys[-1])
  return jnp.clip(x, 0.0, 1.0)


def augment_batch(images, rates, key, cfg: Config, *, probe: bool, cutout_level=None):
  """(augmented images, ops, levels) of a batch of float images in [0, 1]."""
  k_policy, k_apply = jax.random.split(key)
  n = images.shape[0]
  ops, levels = jax.vmap(lambda k: sample_policy(rates, k, cfg, probe))(
    jax.random.split(k_policy, n)
  )
  fn = functools.partial(apply_policy, cutout_level=cutout_level)
  return jax.vmap(fn)(images, ops, levels, jax.random.split(k_apply, n)), ops, levels


def proximity(probs, labels):
  """1 − ½‖p − onehot(y)‖₁ per example: 1 for a confident right prediction, 0 for a wrong one."""
  onehot = jax.nn.one_hot(labels, probs.shape[-1])
  return 1.0 - 0.5 * jnp.abs(probs - onehot).sum(-1)


def update_rates(rates, ops, levels, prox, cfg: Config):
  """The official update_rates for every probe, image after image, op after op: the bin of each
  parameter, int(level · bins · 0.999), moves towards the image's proximity."""

  def one(rates, item):
    op, level, p = item
    num_bins = jnp.asarray(NUM_BINS)[op]
    bins = (level * num_bins * 0.999).astype(jnp.int32)
    for j in range(MAX_PARAMS):
      new = rates[op, j, bins[j]] * cfg.decay + p * (1 - cfg.decay)
      rates = rates.at[op, j, bins[j]].set(jnp.where(num_bins[j] > 0, new, rates[op, j, bins[j]]))
    return rates, None

  depth = ops.shape[1]
  items = (ops.reshape(-1), levels.reshape(-1, MAX_PARAMS), jnp.repeat(prox, depth))
  return jax.lax.scan(one, rates, items)[0]
