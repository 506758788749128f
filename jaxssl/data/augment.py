"""On-device augmentation: pure, jittable, keyed functions of float images in [0, 1], NHWC.

`weak`: random horizontal flip (off for digits) and pad-and-crop translation by up to 12.5 %.
`strong`: the weak view, then RandAugment (N=2 ops, a random level each), then Cutout.
`op_prob=0.5` applies each op with probability 0.5 as the official code does; `op_prob=1.0` always
applies it, as the paper says (fixmatch #65). A level is m = 1..9 / 10, the official code's
levels 1-9 of 10.

A `Recipe` says which ops, what fills the pixels a warp or Cutout empties, and how far they go:
`FIXMATCH` is google-research/fixmatch's CIFAR/SVHN recipe (libml/augment.py's RandAugment pool
over third_party/auto_augment/augmentations.py: 14 ops, grey fill, reflect padding, fixed 16x16
Cutout at 32x32). Its ops map a level as that code does: AutoContrast and Equalize whole whatever
the level, Posterize to 4 - int(4·m) bits (4 down to 1; the paper's table and USB say 4-8 bits),
the enhance ops to a factor 0.1 + 1.8·m, no sign. `DIGITS` is for black-background grayscale
digits, after USB's recipe for 28x28 grayscale images (no colour ops, black fill, Cutout of random
size) plus a translation capped so a shifted digit keeps its ink; its ops are the plain ones
below, where m blends Equalize in (USB: whole) and the enhance factor is 1 ± 0.9·m (USB: a
factor in [0.05, 0.95]). Every MNIST result in RESULTS.md was run with DIGITS as it is.

Deviations from both official codes: ShearX/Y shear about the image centre here, where their PIL
`AFFINE (1, s, 0, 0, 1, 0)` shears about the top-left corner and so also shifts the content
sideways by up to 0.27 of the side at the far edge; translations are 0.3·m of the side, where the
official code moves by int(10·m) whole pixels (the same at 32x32 to within a pixel). Every
RandAugment result in RESULTS.md was run with centre shears. CTAugment (ctaugment.py) follows
PIL's corner.
"""

import functools
from collections.abc import Callable
from typing import NamedTuple

import dm_pix as pix
import jax
import jax.numpy as jnp

GRAY = 0.5  # fill for pixels that geometric ops and Cutout leave empty


def _blend(degenerate, x, factor):
  """PIL ImageEnhance: factor 0 gives `degenerate`, 1 the image."""
  return jnp.clip(degenerate + factor * (x - degenerate), 0.0, 1.0)


def _factor(m, sign):
  return 1.0 + sign * 0.9 * m  # [0.1, 1.9] at full magnitude, as AutoAugment's enhance ops


def _gray(x):
  return pix.rgb_to_grayscale(x, keep_dims=True) if x.shape[-1] == 3 else x


def affine(x, matrix2, offset, *, order: int = 1, fill: float = 0.0):
  """Output pixel o = (row, col) of an HWC image samples the input at matrix2·o + offset,
  bilinearly (order 1) or at the nearest pixel (order 0, halves away from zero), `fill` where that
  point lies outside the image.

  dm_pix.affine_transform(mode='constant') with a matrix that leaves the channel axis alone, in
  2-D: pix interpolates over the channel axis too (8 corners, of which 4 carry weight, summed by a
  reduction), and on XLA:CPU that reduction, its stacking and transposes were ~40 % of the MNIST
  FixMatch step's op time (RESULTS.md). Order 0 is jax.scipy's map_coordinates per channel, as in
  pix. Order 1 keeps pix's corners and weights (floor and ceil clipped into the image, weights
  from the floor, the fill only where the point is outside), which map_coordinates does not: it
  blends the fill into the pixels along the border."""
  h, w, c = x.shape
  rows = jnp.arange(h, dtype=jnp.float32)[:, None]
  cols = jnp.arange(w, dtype=jnp.float32)[None, :]
  r = matrix2[0, 0] * rows + matrix2[0, 1] * cols + offset[0]
  q = matrix2[1, 0] * rows + matrix2[1, 1] * cols + offset[1]
  if order == 0:
    nearest = lambda ch: jax.scipy.ndimage.map_coordinates(ch, (r, q), 0, cval=fill)
    return jax.vmap(nearest, -1, -1)(x)
  if order != 1:
    raise ValueError(f'order must be 0 or 1, got {order}')
  flat = x.reshape(h * w, c)

  def at(i, j):  # the pixels at integer (row, col) maps, clipped into the image
    return flat[(jnp.clip(i, 0, h - 1) * w + jnp.clip(j, 0, w - 1)).astype(jnp.int32)]

  r0, q0 = jnp.floor(r), jnp.floor(q)
  r1, q1 = jnp.ceil(r), jnp.ceil(q)
  wr, wq = (r - r0)[..., None], (q - q0)[..., None]
  out = (1 - wr) * (1 - wq) * at(r0, q0) + (1 - wr) * wq * at(r0, q1)
  out = out + wr * (1 - wq) * at(r1, q0) + wr * wq * at(r1, q1)
  inside = (r >= 0) & (r <= h - 1) & (q >= 0) & (q <= w - 1)
  return jnp.where(inside[..., None], out, fill).astype(x.dtype)


def _warp(x, matrix2, shift, fill=GRAY):
  """Output pixel o samples input M·(o − c) + c + shift: M about the image centre c, (row, col)."""
  h, w, _ = x.shape
  centre = jnp.array([(h - 1) / 2, (w - 1) / 2])
  return affine(x, matrix2, centre - matrix2 @ centre + shift, order=1, fill=fill)


# The geometric ops as (2x2 map, shift) of magnitude m, so a RandAugment layer warps each image
# once whichever of them it draws, instead of running all five warps and selecting one.
def _rotation(m, sign, h, w, t=0.3):
  a = sign * m * jnp.deg2rad(30.0)
  return jnp.array([[jnp.cos(a), jnp.sin(a)], [-jnp.sin(a), jnp.cos(a)]]), jnp.zeros(2)


def _shear_x(m, sign, h, w, t=0.3):
  return jnp.array([[1.0, 0.0], [sign * 0.3 * m, 1.0]]), jnp.zeros(2)


def _shear_y(m, sign, h, w, t=0.3):
  return jnp.array([[1.0, sign * 0.3 * m], [0.0, 1.0]]), jnp.zeros(2)


def _translate_x(m, sign, h, w, t=0.3):
  return jnp.eye(2), jnp.array([0.0, sign * t * m * w])


def _translate_y(m, sign, h, w, t=0.3):
  return jnp.eye(2), jnp.array([sign * t * m * h, 0.0])


def _no_warp(m, sign, h, w, t=0.3):
  return jnp.eye(2), jnp.zeros(2)


def identity(x, m, sign):
  return x


def autocontrast(x, m, sign):
  lo, hi = x.min((0, 1), keepdims=True), x.max((0, 1), keepdims=True)
  stretched = jnp.where(hi > lo, (x - lo) / jnp.where(hi > lo, hi - lo, 1.0), x)
  return x + m * (stretched - x)


def equalize(x, m, sign):
  """PIL ImageOps.equalize per channel, blended in by m."""

  def channel(c):
    v = jnp.round(c * 255).astype(jnp.int32)
    hist = jnp.bincount(v.ravel(), length=256)
    last = hist[255 - jnp.argmax(hist[::-1] > 0)]
    step = (hist.sum() - last) // 255
    lut = jnp.clip((jnp.cumsum(hist) - hist + step // 2) // jnp.maximum(step, 1), 0, 255)
    return jnp.where(step > 0, lut[v], v) / 255.0

  equalized = jnp.stack([channel(x[..., i]) for i in range(x.shape[-1])], -1)
  return x + m * (equalized - x)


def rotate(x, m, sign):
  return _warp(x, *_rotation(m, sign, *x.shape[:2]))


def solarize(x, m, sign):
  return jnp.where(x > 1.0 - m, 1.0 - x, x)  # threshold 1 - m: nothing inverted at m = 0


def color(x, m, sign):
  return _blend(_gray(x), x, _factor(m, sign))


def contrast(x, m, sign):
  return _blend(jnp.mean(_gray(x)), x, _factor(m, sign))


def brightness(x, m, sign):
  return _blend(jnp.zeros_like(x), x, _factor(m, sign))


def sharpness(x, m, sign):
  """Blend with PIL's SMOOTH filter (centre weight 5 of 13); the border is left as is."""
  h, w, _ = x.shape
  window = lambda dy, dx: x[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx]
  smooth = sum(window(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) + 4.0 * window(0, 0)
  smooth = x.at[1:-1, 1:-1].set(smooth / 13.0)
  return _blend(smooth, x, _factor(m, sign))


def shear_x(x, m, sign):
  return _warp(x, *_shear_x(m, sign, *x.shape[:2]))


def shear_y(x, m, sign):
  return _warp(x, *_shear_y(m, sign, *x.shape[:2]))


def translate_x(x, m, sign):
  return _warp(x, *_translate_x(m, sign, *x.shape[:2]))


def translate_y(x, m, sign):
  return _warp(x, *_translate_y(m, sign, *x.shape[:2]))


# google-research/fixmatch's level mapping (third_party/auto_augment/augmentations.py), for the
# ops where it differs from the plain ones above; m = level / 10.
def autocontrast_whole(x, m, sign):
  return autocontrast(x, 1.0, sign)  # ImageOps.autocontrast, the level unused


def equalize_whole(x, m, sign):
  return equalize(x, 1.0, sign)


def posterize(x, m, sign):
  """ImageOps.posterize to 4 - int(4·m) bits: 4 at levels 1-2 down to 1 at levels 8-9."""
  bits = 4 - jnp.floor(4 * m).astype(jnp.int32)
  v = jnp.round(x * 255).astype(jnp.int32)
  return jnp.left_shift(jnp.right_shift(v, 8 - bits), 8 - bits) / 255.0


def _level_factor(op):
  """The enhance op at factor 0.1 + 1.8·m (= 1 + 0.9·(2m - 1)), no random sign."""

  def at_level(x, m, sign):
    return op(x, 2.0 * m - 1.0, 1.0)

  at_level.__name__ = f'{op.__name__}_official'
  return at_level


color_official, contrast_official, brightness_official, sharpness_official = map(
  _level_factor, (color, contrast, brightness, sharpness)
)

# The official code's 14 ops, in its order (RANDOM_POLICY_OPS).
OPS = (
  identity,
  autocontrast_whole,
  equalize_whole,
  rotate,
  solarize,
  color_official,
  contrast_official,
  brightness_official,
  sharpness_official,
  shear_x,
  translate_x,
  translate_y,
  posterize,
  shear_y,
)


# USB's op list for grayscale images (`augment_list_no_color`): the colour ops go; Solarize would
# hollow a digit's strokes, Posterize and AutoContrast do nothing to it.
DIGIT_OPS = (
  identity,
  brightness,
  equalize,
  rotate,
  sharpness,
  shear_x,
  shear_y,
  translate_x,
  translate_y,
)


class Recipe(NamedTuple):
  """The ops of the strong view and how they treat the image's border."""

  ops: tuple[Callable, ...]
  fill: float  # value of pixels a warp, a padded shift or Cutout leaves empty
  pad_mode: str  # weak shift: 'reflect' (official CIFAR) or 'constant' (with fill)
  max_translate: float  # RandAugment's translation at full magnitude, as a fraction of the side
  random_cutout: bool  # Cutout side uniform in [0, cutout_size] (USB) rather than exactly it


FIXMATCH = Recipe(OPS, GRAY, 'reflect', 0.3, False)
# MNIST's digits sit in a 20x20 box centred in 28x28: a 4 px translation on top of the weak 4 px
# shift keeps almost all of the ink, the official 0.3·28 = 8.4 px does not.
DIGITS = Recipe(DIGIT_OPS, 0.0, 'constant', 0.15, True)
RECIPES = {'fixmatch': FIXMATCH, 'digits': DIGITS}


def cutout(x, key, size: float, fill: float = GRAY, random_size: bool = False):
  """Fills a square of side size·min(H, W) (or a uniform fraction of it), centred at a random
  pixel and clipped at the border, with `fill`."""
  h, w, _ = x.shape
  k_size, k_pos = jax.random.split(key)
  side = size * min(h, w)
  if side < 1:
    return x
  if random_size:
    side = side * jax.random.uniform(k_size)
  side = jnp.round(side).astype(jnp.int32)
  cy, cx = jax.random.randint(k_pos, (2,), 0, jnp.array([h, w]))
  top, left = cy - side // 2, cx - side // 2
  rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
  inside = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
  return jnp.where(inside[..., None], fill, x)


def _weak_one(x, key, flip: bool, pad_fraction: float, recipe: Recipe):
  k_flip, k_crop = jax.random.split(key)
  if flip:
    x = jnp.where(jax.random.bernoulli(k_flip), pix.flip_left_right(x), x)
  h, w, c = x.shape
  pad = int(round(pad_fraction * h)), int(round(pad_fraction * w))
  widths = ((pad[0], pad[0]), (pad[1], pad[1]), (0, 0))
  if recipe.pad_mode == 'reflect':
    padded = jnp.pad(x, widths, mode='reflect')
  else:
    padded = jnp.pad(x, widths, mode='constant', constant_values=recipe.fill)
  return pix.random_crop(k_crop, padded, (h, w, c))


GEOMETRIC = {rotate: _rotation, shear_x: _shear_x, shear_y: _shear_y}
GEOMETRIC |= {translate_x: _translate_x, translate_y: _translate_y}


def _strong_one(x, key, num_ops: int, op_prob: float, cutout_size: float, recipe: Recipe):
  h, w, _ = x.shape
  ops = recipe.ops
  is_geometric = jnp.array([op in GEOMETRIC for op in ops])
  maps = [
    functools.partial(GEOMETRIC.get(op, _no_warp), h=h, w=w, t=recipe.max_translate) for op in ops
  ]
  # One RandAugment layer traced once and looped over (num_ops copies of every op would double
  # what XLA compiles); the same keys, so the same draws.
  pixel_ops = [identity if f in GEOMETRIC else f for f in ops]

  def layer(x, k):
    k_op, k_mag, k_sign, k_apply = jax.random.split(k, 4)
    op = jax.random.randint(k_op, (), 0, len(ops))
    m = jax.random.randint(k_mag, (), 1, 10) / 10.0  # the official code's levels 1..9 of 10
    sign = jnp.where(jax.random.bernoulli(k_sign), 1.0, -1.0)
    # Under vmap a switch runs every branch: the cheap pixel ops all run, the warp runs once.
    pixel = jax.lax.switch(op, [functools.partial(f, sign=sign) for f in pixel_ops], x, m)
    warped = _warp(x, *jax.lax.switch(op, maps, m, sign), fill=recipe.fill)
    out = jnp.where(is_geometric[op], warped, pixel)
    return jnp.where(jax.random.uniform(k_apply) < op_prob, out, x), None

  keys = jax.random.split(key, num_ops + 1)
  x, _ = jax.lax.scan(layer, x, keys[:-1])
  return cutout(x, keys[-1], cutout_size, recipe.fill, recipe.random_cutout)


def weak(images, key, *, flip: bool = True, pad_fraction: float = 0.125, recipe=FIXMATCH):
  """Random flip and translation of every image in a batch."""
  keys = jax.random.split(key, images.shape[0])
  fn = functools.partial(_weak_one, flip=flip, pad_fraction=pad_fraction, recipe=recipe)
  return jax.vmap(fn)(images, keys)


def strong(
  images,
  key,
  *,
  num_ops: int = 2,
  op_prob: float = 0.5,
  cutout_size: float = 0.5,
  flip: bool = True,
  pad_fraction: float = 0.125,
  recipe: Recipe = FIXMATCH,
):
  """The weak view, then RandAugment and Cutout (16x16 at 32x32 in the FixMatch recipe)."""
  k_weak, k_strong = jax.random.split(key)
  x = weak(images, k_weak, flip=flip, pad_fraction=pad_fraction, recipe=recipe)
  keys = jax.random.split(k_strong, images.shape[0])
  fn = functools.partial(
    _strong_one, num_ops=num_ops, op_prob=op_prob, cutout_size=cutout_size, recipe=recipe
  )
  return jax.vmap(fn)(x, keys)
