"""On-device augmentation: shapes, ranges, determinism, identity at magnitude 0, PIL parity (of the
official FixMatch recipe's level mappings too)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from jaxssl.data import augment


def _jit(fn):
  """fn(images, key, **options) compiled whole: one XLA program instead of one per primitive."""
  return lambda images, key, **options: jax.jit(functools.partial(fn, **options))(images, key)


@pytest.fixture(scope='module')
def image():
  rng = np.random.default_rng(0)
  return rng.integers(0, 256, (32, 32, 3)).astype(np.float32) / 255.0


# The official recipe's level mappings, which are not the identity at level 0 (it draws 1-9).
LEVEL_MAPPED = {'autocontrast_whole', 'equalize_whole', 'posterize'} | {
  f'{name}_official' for name in ('color', 'contrast', 'brightness', 'sharpness')
}
ALL_OPS = {op.__name__: op for op in augment.OPS + augment.DIGIT_OPS}


@pytest.mark.parametrize('name', sorted(ALL_OPS))
def test_op_keeps_shape_dtype_range_and_plain_ops_are_identity_at_zero(name, image):
  fn = jax.jit(ALL_OPS[name])
  for m in (0.3, 1.0):
    for sign in (-1.0, 1.0):
      out = fn(image, m, sign)
      assert out.shape == image.shape and out.dtype == jnp.float32
      assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
  if name not in LEVEL_MAPPED:
    np.testing.assert_allclose(fn(image, 0.0, 1.0), image, atol=1e-6)


def _pil(x):
  return Image.fromarray(np.round(np.asarray(x) * 255).astype(np.uint8))


def test_equalize_autocontrast_posterize_match_pil(image):
  low_contrast = np.round((0.3 + 0.4 * image) * 255) / 255  # so autocontrast has work to do
  for level in (1, 9):  # the official recipe applies both whole, whatever the level
    m = np.float32(level / 10)
    np.testing.assert_allclose(
      np.asarray(augment.equalize_whole(image, m, 1.0)) * 255,
      np.asarray(ImageOps.equalize(_pil(image))),
    )
    np.testing.assert_allclose(
      np.asarray(augment.autocontrast_whole(low_contrast, m, -1.0)) * 255,
      np.asarray(ImageOps.autocontrast(_pil(low_contrast))),
      atol=1.0,  # PIL truncates through a uint8 lookup table
    )
  for level in range(1, 10):  # augmentations.py: posterize(img, 4 - int_parameter(level, 4))
    np.testing.assert_allclose(
      np.asarray(augment.posterize(image, np.float32(level / 10), 1.0)) * 255,
      np.asarray(ImageOps.posterize(_pil(image), 4 - int(level * 4 / 10))),
      err_msg=f'level {level}',
    )


@pytest.mark.parametrize('channels', [3, 1])
def test_enhance_ops_and_solarize_match_pil(channels):
  # The plain enhance ops are PIL's ImageEnhance at factor 1 ± 0.9·m, the official recipe's at
  # 0.1 + 1.8·m, on colour and grey images. PIL blends in uint8 (each output rounded to a
  # level), so within 1.5 levels of 255.
  rng = np.random.default_rng(1)
  pixels = rng.integers(0, 256, (32, 32, channels)).astype(np.uint8)
  x = jnp.asarray(pixels / 255.0, jnp.float32)
  pil = Image.fromarray(pixels if channels == 3 else pixels[..., 0])
  as_array = lambda im: np.asarray(im, np.float64).reshape(pixels.shape)
  enhancers = {
    augment.color: ImageEnhance.Color,
    augment.contrast: ImageEnhance.Contrast,
    augment.brightness: ImageEnhance.Brightness,
    augment.sharpness: ImageEnhance.Sharpness,
  }
  for op, enhancer in enhancers.items():
    for m, sign in ((0.3, 1.0), (0.3, -1.0), (1.0, 1.0), (1.0, -1.0)):
      ours = np.asarray(op(x, m, sign), np.float64) * 255
      theirs = as_array(enhancer(pil).enhance(1.0 + sign * 0.9 * m))
      np.testing.assert_allclose(ours, theirs, atol=1.5, err_msg=f'{op.__name__} {m} {sign}')
  official = {
    augment.color_official: ImageEnhance.Color,
    augment.contrast_official: ImageEnhance.Contrast,
    augment.brightness_official: ImageEnhance.Brightness,
    augment.sharpness_official: ImageEnhance.Sharpness,
  }
  for op, enhancer in official.items():  # augmentations.py: factor level·1.8/10 + 0.1, no sign
    for level in (1, 5, 9):
      ours = np.asarray(op(x, np.float32(level / 10), -1.0), np.float64) * 255
      theirs = as_array(enhancer(pil).enhance(level * 1.8 / 10 + 0.1))
      np.testing.assert_allclose(ours, theirs, atol=1.5, err_msg=f'{op.__name__} {level}')
  for m in (0.3, 0.7, 1.0):  # PIL inverts the levels >= its threshold; ours those > 1 - m
    ours = np.asarray(augment.solarize(x, m, 1.0), np.float64) * 255
    theirs = as_array(ImageOps.solarize(pil, int(np.floor(255 * (1 - m) + 1e-6)) + 1))
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


@pytest.mark.parametrize('shape', [(4, 32, 32, 3), (4, 28, 28, 1)])
def test_weak_and_strong_are_deterministic_per_key(shape):
  x = jax.random.uniform(jax.random.key(0), shape)
  for fn in (jax.jit(augment.weak), jax.jit(augment.strong)):
    a, b = fn(x, jax.random.key(1)), fn(x, jax.random.key(1))
    np.testing.assert_array_equal(a, b)
    assert a.shape == shape and float(a.min()) >= 0 and float(a.max()) <= 1
    assert not np.allclose(a, fn(x, jax.random.key(2)))


def test_weak_is_a_flip_and_a_bounded_shift():
  x = jnp.zeros((1, 32, 32, 1)).at[0, 16, 16, 0].set(1.0)
  for seed in range(8):
    out = _jit(augment.weak)(x, jax.random.key(seed))[0, ..., 0]
    (r,), (c,) = np.nonzero(np.asarray(out) == 1.0)
    assert abs(r - 16) <= 4 and (abs(c - 16) <= 4 or abs(c - 15) <= 4)  # flips map 16 to 15
  no_flip = augment.weak(
    jnp.tile(jnp.arange(32.0)[None, None, :, None] / 31, (1, 32, 1, 1)),
    jax.random.key(0),
    flip=False,
    pad_fraction=0.0,
  )
  np.testing.assert_allclose(no_flip[0, 0, :, 0], jnp.arange(32.0) / 31)


def test_strong_without_ops_or_cutout_is_the_weak_view():
  x = jax.random.uniform(jax.random.key(0), (4, 32, 32, 3))
  key = jax.random.key(3)
  plain = _jit(augment.strong)(x, key, op_prob=0.0, cutout_size=0.0)
  np.testing.assert_array_equal(plain, _jit(augment.weak)(x, jax.random.split(key)[0]))


def test_cutout_fills_an_exact_16px_square_at_32px():
  for seed in range(20):
    out = augment.cutout(jnp.ones((32, 32, 3)), jax.random.key(seed), 0.5)
    gray = np.asarray(out[..., 0]) == augment.GRAY
    rows, cols = np.nonzero(gray)
    assert rows.max() - rows.min() + 1 <= 16 and cols.max() - cols.min() + 1 <= 16
    inside = (rows.min() > 0 and rows.max() < 31) and (cols.min() > 0 and cols.max() < 31)
    if inside:  # not clipped by the border: the whole square
      assert gray.sum() == 16 * 16


def test_random_cutout_draws_sizes_up_to_the_maximum():
  sides = []
  for seed in range(64):
    out = augment.cutout(jnp.ones((28, 28, 1)), jax.random.key(seed), 0.5, 0.0, random_size=True)
    black = np.asarray(out[..., 0]) == 0.0
    if black.any():
      rows, cols = np.nonzero(black)
      sides.append(max(rows.max() - rows.min(), cols.max() - cols.min()) + 1)
  assert max(sides) <= 14 and min(sides) <= 4 and max(sides) >= 10  # sizes spread over [0, 14]


def test_digit_recipe_is_usbs_grayscale_op_list():
  names = {op.__name__ for op in augment.DIGITS.ops}
  assert names == {
    'identity',
    'brightness',
    'equalize',
    'rotate',
    'sharpness',
    'shear_x',
    'shear_y',
    'translate_x',
    'translate_y',
  }  # USB augment_list_no_color: no Solarize (it hollows strokes), no colour ops
  assert augment.FIXMATCH.ops == augment.OPS and len(augment.OPS) == 14


@pytest.mark.parametrize('recipe', ['digits', 'fixmatch'])
def test_background_stays_black_only_in_the_digit_recipe(recipe):
  # A black image: every fill the digit recipe makes (warps, padding, Cutout) is black too.
  x = jnp.zeros((32, 28, 28, 1))
  out = _jit(augment.strong)(
    x, jax.random.key(0), op_prob=1.0, flip=False, recipe=augment.RECIPES[recipe]
  )
  if recipe == 'digits':
    np.testing.assert_array_equal(out, 0.0)
  else:
    assert float(out.max()) >= augment.GRAY  # grey Cutout squares and warp fills


def _shift_of_a_centred_blob(recipe, n=64):
  """Largest displacement of a 2x2 blob at the centre over n strong views (inf: out of sight)."""
  x = jnp.zeros((n, 28, 28, 1)).at[:, 13:15, 13:15, 0].set(1.0)
  # Ops always applied, no Cutout, no weak shift: only the RandAugment warps move the blob;
  # rotations and shears about the centre leave it in place.
  out = _jit(augment.strong)(
    x, jax.random.key(0), op_prob=1.0, cutout_size=0.0, flip=False, pad_fraction=0.0, recipe=recipe
  )
  out = np.asarray(out[..., 0])
  mass = out.sum((1, 2))
  rows, cols = np.indices((28, 28))
  centre = np.stack([(rows * out).sum((1, 2)), (cols * out).sum((1, 2))], -1) / mass[:, None]
  # Brightness may dim the blob to a tenth of its ink; below that it left the image.
  shifts = np.where(mass > 0.05, np.abs(centre - 13.5).max(-1), np.inf)
  return shifts.max()


def test_digit_recipe_caps_translation():
  cap = 2 * 0.15 * 0.9 * 28  # two ops at most, each at most level 9 of 10
  assert _shift_of_a_centred_blob(augment.DIGITS) <= cap + 0.5
  assert _shift_of_a_centred_blob(augment.FIXMATCH) > cap + 0.5  # the official 0.3·side


def test_weak_shift_pads_with_the_recipe_fill():
  x = jnp.ones((16, 28, 28, 1))
  digits = _jit(augment.weak)(x, jax.random.key(0), flip=False, recipe=augment.DIGITS)
  official = _jit(augment.weak)(x, jax.random.key(0), flip=False, recipe=augment.FIXMATCH)
  assert float(digits.min()) == 0.0  # shifted-in border is black
  np.testing.assert_array_equal(official, 1.0)  # reflect padding of a constant image


def test_strong_view_without_flip_never_mirrors():
  # A left-right asymmetric image; no ops, no Cutout, no shift: only a flip could change it.
  x = jnp.tile(jnp.linspace(0.0, 1.0, 28)[None, None, :, None], (16, 28, 1, 1))
  out = _jit(augment.strong)(
    x, jax.random.key(0), op_prob=0.0, cutout_size=0.0, flip=False, pad_fraction=0.0
  )
  np.testing.assert_array_equal(out, x)
  flipped = _jit(augment.strong)(
    x, jax.random.key(0), op_prob=0.0, cutout_size=0.0, pad_fraction=0.0
  )
  assert not np.array_equal(flipped, x)  # with flips on, some of the 16 are mirrored


@pytest.mark.parametrize('shape', [(28, 28, 1), (32, 32, 3)])
def test_affine_samples_as_dm_pix(shape):
  # augment.affine is pix.affine_transform(mode='constant') in 2-D: bilinear to float rounding
  # (the sample points are computed in another order: ~1e-6 at 30 px from the origin),
  # nearest exactly, the fill outside, over random maps, integer shifts (corners at a pixel) and
  # points far outside.
  import dm_pix as pix

  def reference(x, m2, offset, order):
    matrix = jnp.eye(3).at[:2, :2].set(m2)
    offset = jnp.append(offset, 0.0)
    return pix.affine_transform(x, matrix, offset=offset, order=order, mode='constant', cval=0.3)

  mine = lambda x, m2, o, order: augment.affine(x, m2, o, order=order, fill=0.3)
  mine = jax.jit(mine, static_argnums=3)
  reference = jax.jit(reference, static_argnums=3)
  rng = np.random.default_rng(0)
  x = rng.uniform(size=shape).astype(np.float32)
  for t in range(12):
    m2 = np.eye(2) + (0.4 * rng.normal(size=(2, 2)) if t % 3 else 0.0)
    offset = 6 * rng.normal(size=2) * (10 if t == 11 else 1)
    offset = np.round(offset) if t % 4 == 0 else offset
    m2, offset = m2.astype(np.float32), offset.astype(np.float32)
    np.testing.assert_allclose(mine(x, m2, offset, 1), reference(x, m2, offset, 1), atol=1e-5)
    np.testing.assert_array_equal(mine(x, m2, offset, 0), reference(x, m2, offset, 0))
