"""CTAugment against google-research/fixmatch libml/ctaugment.py: its bin-weight update and
sampling rule transcribed in NumPy, and its PIL ops run on the same images."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from jaxssl.data import ctaugment as cta

CFG = cta.Config(depth=2, threshold=0.8, decay=0.99)


class _Official:
  """libml/ctaugment.CTAugment's rates, rate_to_p and update_rates, verbatim but for names."""

  def __init__(self, depth=2, th=0.8, decay=0.99):
    self.decay, self.depth, self.th = decay, depth, th
    self.rates = {op.name: tuple(np.ones(n, 'f') for n in op.bins) for op in cta.OPS}

  def rate_to_p(self, rate):
    p = rate + (1 - self.decay)
    p = p / p.max()
    p[p < self.th] = 0
    return p

  def update_rates(self, policy, proximity):
    for k, bins in policy:
      for p, rate in zip(bins, self.rates[k]):
        p = int(p * len(rate) * 0.999)
        rate[p] = rate[p] * self.decay + proximity * (1 - self.decay)


def _as_array(official):
  out = np.ones((len(cta.OPS), cta.MAX_PARAMS, cta.MAX_BINS), np.float32)
  for i, op in enumerate(cta.OPS):
    for j, rate in enumerate(official.rates[op.name]):
      out[i, j, : len(rate)] = rate
  return out


def test_update_rates_and_rate_to_p_match_the_official_code():
  rng = np.random.default_rng(0)
  official, rates = _Official(), cta.init_rates()
  for _ in range(6):  # batches of 8 probes; ops repeat, so bins are hit more than once
    ops = rng.integers(0, len(cta.OPS), size=(8, 2))
    ops[0] = [cta.NAMES.index('rescale'), cta.NAMES.index('rescale')]  # two parameters
    levels = rng.uniform(size=(8, 2, 2))
    levels[1, 0, 0] = 1.0  # the last bin: int(1 · 17 · 0.999) = 16
    prox = rng.uniform(size=8)
    for i in range(8):
      policy = [(cta.NAMES[k], levels[i, d, : len(cta.OPS[k].bins)]) for d, k in enumerate(ops[i])]
      official.update_rates(policy, prox[i])
    rates = cta.update_rates(rates, jnp.asarray(ops), jnp.asarray(levels, jnp.float32),
                             jnp.asarray(prox, jnp.float32), CFG)  # fmt: skip
  np.testing.assert_allclose(rates, _as_array(official), rtol=1e-6)
  assert (np.asarray(rates) != 1).sum() > 40
  p = np.asarray(cta.rate_to_p(rates, CFG))
  for i, op in enumerate(cta.OPS):
    for j, rate in enumerate(official.rates[op.name]):
      np.testing.assert_allclose(p[i, j, : len(rate)], official.rate_to_p(rate.copy()), rtol=1e-6)
      assert (p[i, j, len(rate) :] == 0).all()


def test_training_magnitudes_come_from_the_bins_above_the_threshold():
  # Every weight 0 but bin 5 (and rescale's method bin 2): rate_to_p keeps those bins only.
  rates = (
    jnp.zeros_like(cta.init_rates()).at[:, :, 5].set(1.0).at[:, 1, :].set(0).at[:, 1, 2].set(1)
  )
  keys = jax.random.split(jax.random.key(0), 500)
  ops, levels = jax.vmap(lambda k: cta.sample_policy(rates, k, CFG, probe=False))(keys)
  ops, levels = np.asarray(ops).ravel(), np.asarray(levels).reshape(-1, 2)
  bins = np.asarray(cta.NUM_BINS)[ops]
  first = levels[bins[:, 0] > 0, 0] * bins[bins[:, 0] > 0, 0]
  assert ((first >= 5) & (first < 6)).all()
  rescale = ops == cta.NAMES.index('rescale')
  assert rescale.any() and ((levels[rescale, 1] * 6 >= 2) & (levels[rescale, 1] * 6 < 3)).all()
  assert len(np.unique(ops)) == len(cta.OPS)  # ops uniform over all 19
  _, probe = jax.vmap(lambda k: cta.sample_policy(rates, k, CFG, probe=True))(keys)
  assert np.asarray(probe).std() > 0.25  # probes ignore the weights: uniform magnitudes


# The official ops (libml/ctaugment.py), for PIL images.
def _pil_ops():
  enhance = lambda op: lambda x, v: op(x).enhance(0.1 + 1.9 * v)
  blend_op = lambda op: lambda x, v: Image.blend(x, op(x), v)
  blend_filter = lambda f: lambda x, v: Image.blend(x, x.filter(f), v)
  affine = lambda *coefficients: (
    lambda x, v: x.transform(
      x.size, Image.AFFINE, tuple(c if c is not None else (2 * v - 1) * 0.3 for c in coefficients)
    )
  )

  def rescale(x, scale, method):
    s = x.size
    scale *= 0.25
    crop = (scale * s[0], scale * s[1], s[0] * (1 - scale), s[1] * (1 - scale))
    methods = (
      Image.LANCZOS,
      Image.BICUBIC,
      Image.BILINEAR,
      Image.BOX,
      Image.HAMMING,
      Image.NEAREST,
    )
    return x.crop(crop).resize(x.size, methods[int(method * 5.99)])

  return {
    'autocontrast': blend_op(ImageOps.autocontrast),
    'blur': blend_filter(ImageFilter.BLUR),
    'brightness': enhance(ImageEnhance.Brightness),
    'color': enhance(ImageEnhance.Color),
    'contrast': enhance(ImageEnhance.Contrast),
    'equalize': blend_op(ImageOps.equalize),
    'invert': blend_op(ImageOps.invert),
    'posterize': lambda x, v: ImageOps.posterize(x, 1 + int(v * 7.999)),
    'rescale': rescale,
    'rotate': lambda x, v: x.rotate(int(np.round((2 * v - 1) * 45))),
    'sharpness': enhance(ImageEnhance.Sharpness),
    'shear_x': affine(1, None, 0, 0, 1, 0),  # None: (2v − 1)·0.3
    'shear_y': affine(1, 0, 0, None, 1, 0),
    'smooth': blend_filter(ImageFilter.SMOOTH),
    'solarize': lambda x, v: ImageOps.solarize(x, int(v * 255.999)),
    'translate_x': affine(1, 0, None, 0, 1, 0),
    'translate_y': affine(1, 0, 0, 0, 1, None),
  }  # fmt: skip


def _image():
  """A 32x32 RGB image with edges and smooth regions, not using the full range."""
  yy, xx = np.mgrid[:32, :32]
  rng = np.random.default_rng(3)
  img = np.stack([40 + 4 * xx, 60 + 3 * yy, 100 + 60 * ((xx // 8 + yy // 8) % 2)], -1)
  return np.clip(img + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)


# (level(s), tolerance on |ours − PIL| in 1/255 units, fraction of pixels allowed beyond it)
CASES = {
  'autocontrast': ((0.7,), 2, 0.0),
  'blur': ((0.6,), 2, 0.0),
  'brightness': ((0.3,), 2, 0.0),
  'color': ((0.8,), 2, 0.0),
  'contrast': ((0.2,), 2, 0.0),
  'equalize': ((0.9,), 2, 0.0),
  'invert': ((0.4,), 2, 0.0),
  'posterize': ((0.35,), 0, 0.0),
  'rescale': ((0.8, 0.4), 3, 0.02),
  'rotate': ((0.8,), 0, 0.03),  # nearest neighbour: ties at pixel edges may round differently
  'sharpness': ((0.9,), 2, 0.0),
  'shear_x': ((0.9,), 0, 0.03),
  'shear_y': ((0.1,), 0, 0.03),
  'smooth': ((0.5,), 2, 0.0),
  'solarize': ((0.6,), 0, 0.0),
  'translate_x': ((0.95,), 0, 0.0),  # 0.27 px: PIL's nearest sampling leaves the image as is
  'translate_y': ((0.05,), 0, 0.0),
}


def test_ops_match_the_official_pil_ops():
  img = _image()
  apply = jax.jit(cta._apply_op)  # the op index is traced: one compile for all 19
  failures = []
  for name, (levels, tol, beyond) in sorted(CASES.items()):
    ref = np.asarray(_pil_ops()[name](Image.fromarray(img), *levels)).astype(np.float64)
    padded = jnp.asarray((list(levels) + [0.0])[:2], jnp.float32)
    x = jnp.asarray(img / 255.0, jnp.float32)
    ours = apply(x, cta.NAMES.index(name), padded, jax.random.key(0))
    diff = np.abs(np.asarray(ours) * 255 - ref)
    if np.mean(diff > tol + 0.51) > beyond or np.mean(diff) >= 1.5:
      failures.append((name, float(diff.max()), float(np.mean(diff > tol + 0.51))))
  assert not failures, failures


def test_cutout_square_and_fill():
  x = jnp.zeros((32, 32, 3))
  out = np.asarray(cta.cutout(x, 1.0, 0.0, jax.random.key(1)))
  filled = out[..., 0] > 0
  rows, cols = np.nonzero(filled)
  # level 1: size 1 + int(32 · 0.499) = 16, a 16x16 square clipped at the border
  assert rows.max() - rows.min() + 1 <= 16 and cols.max() - cols.min() + 1 <= 16
  assert filled.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
  np.testing.assert_allclose(out[filled], 127 / 255)


def test_augment_batch_keeps_range_and_uses_the_policy():
  images = jnp.asarray(np.stack([_image()] * 4) / 255.0, jnp.float32)
  augment = jax.jit(cta.augment_batch, static_argnames=('cfg', 'probe', 'cutout_level'))
  out, ops, levels = augment(
    images, cta.init_rates(), jax.random.key(2), cfg=CFG, probe=False, cutout_level=1.0
  )
  assert out.shape == images.shape and ops.shape == (4, 2) and levels.shape == (4, 2, 2)
  assert float(out.min()) >= 0 and float(out.max()) <= 1
  assert not np.allclose(out, images)


@pytest.mark.parametrize('case', ['fixmatch+ctaugment', 'remixmatch+ctaugment'])
def test_step_learns_the_probed_bins_only(case):
  # One step with CTAugment: the bins its probes drew move (towards proximities in [0, 1]),
  # every other bin keeps its weight of 1; RandAugment runs carry no such state.
  from tests import helpers

  run, states, metrics = helpers.first_steps(case)
  rates = np.asarray(states[0]['method']['cta_rates'])
  moved = rates != 1
  batch = run.config.batch_size
  # At most batch · depth · 2 bins moved, at least one per probe that drew a parametrised op.
  assert 0 < moved.sum() <= batch * 2 * 2
  # A bin drawn k times in the step ends in [0.99^k, 1]: each draw keeps 0.99 of its weight.
  assert rates.min() >= 0.99 ** (batch * 2) - 1e-6 and rates.max() <= 1
  assert 0 <= float(metrics[0]['monitor/cta_probe_proximity']) <= 1
  assert run.config.strong_augment == 'ctaugment'
  plain = helpers.build_small(helpers.tiny_config(case.partition('+')[0]))
  assert plain.config.strong_augment != 'ctaugment'
  assert 'cta_rates' not in jax.eval_shape(plain.init)['method']


def _takes_strong_augment():
  from jaxssl import methods

  return [m for m in methods.available() if 'strong_augment' in methods.get(m).defaults()]


@pytest.mark.parametrize('method', _takes_strong_augment())
def test_every_method_with_a_strong_view_trains_its_ctaugment_policy(method):
  # Every method whose config has `strong_augment` takes 'ctaugment': its state carries the bin
  # weights, and its step computes new ones, not the input handed through (UDA once kept
  # RandAugment's state and failed inside the traced step with a KeyError). Traced, not compiled:
  # in the step's jaxpr the output bin weights must not be the input variable.
  from tests import helpers

  run = helpers.build_small(helpers.tiny_config(method, strong_augment='ctaugment'))
  batch = run.pipeline.host_batch(0)
  traced = run.train_step.trace(run.abstract_state, batch)
  jaxpr = traced.jaxpr.jaxpr
  args = (run.abstract_state, batch, run.train_step.hp)
  (state_in, _, _) = jax.tree.unflatten(jax.tree.structure(args), jaxpr.invars)
  state_out, metrics = jax.tree.unflatten(jax.tree.structure(traced.out_info), jaxpr.outvars)
  assert state_in['method']['cta_rates'] in jaxpr.invars
  assert state_out['method']['cta_rates'] not in jaxpr.invars, 'the probe update was dropped'
  assert 'monitor/cta_probe_proximity' in metrics
