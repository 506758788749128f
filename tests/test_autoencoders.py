"""M2 / M1+M2 bounds against direct formulas; the Ladder's encoder, decoder and costs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxssl.models.ladder import Ladder, denoising_costs
from jaxssl.models.vae import (
  M1,
  M2,
  gaussian_kl,
  gaussian_log_prob,
  labeled_bound,
  unlabeled_bound,
)
from tests import helpers
from tests.helpers import tiny_config


def _m2(dx=6, dz=3, k=4):
  return M2(dx, dz, k, (5,), gaussian_x=False, rngs=nnx.Rngs(0))


def test_labeled_bound_matches_the_elbo_written_out():
  model, rng = _m2(), np.random.default_rng(0)
  x = (rng.random((3, 6)) > 0.5).astype(np.float32)
  y = np.eye(4, dtype=np.float32)[[0, 3, 1]]
  eps = rng.normal(size=(3, 3)).astype(np.float32)
  got = labeled_bound(model, x, y, eps, gaussian_x=False)
  mean, log_var = (np.asarray(a, np.float64) for a in model.encoder(np.concatenate([x, y], 1)))
  z = mean + np.exp(0.5 * log_var) * eps
  p = 1 / (
    1
    + np.exp(
      -np.asarray(model.decoder(jnp.asarray(np.concatenate([z, y], 1), jnp.float32)), np.float64)
    )
  )
  log_px = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), 1)
  kl = 0.5 * np.sum(np.exp(log_var) + mean**2 - 1 - log_var, 1)
  np.testing.assert_allclose(got, -(log_px - np.log(4) - kl), rtol=1e-4)


def test_gaussian_kl_matches_monte_carlo():
  mean, log_var = jnp.array([[0.5, -1.0]]), jnp.array([[0.3, -0.7]])
  z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(jax.random.key(0), (400_000, 2))
  log_q = -0.5 * jnp.sum(jnp.log(2 * jnp.pi) + log_var + (z - mean) ** 2 / jnp.exp(log_var), 1)
  log_p = -0.5 * jnp.sum(jnp.log(2 * jnp.pi) + z**2, 1)
  np.testing.assert_allclose(gaussian_kl(mean, log_var)[0], jnp.mean(log_q - log_p), atol=5e-3)


def test_unlabeled_bound_equals_labeled_bound_for_one_hot_q():
  model, rng = _m2(), np.random.default_rng(1)
  cls = np.array([2, 0, 3])
  # A classifier output bias of +-1e4 makes q(y|x) one-hot on `cls` for every x.
  last = model.classifier.layers[-1]
  last.kernel[...] = jnp.zeros_like(last.kernel[...])
  x = (rng.random((3, 6)) > 0.5).astype(np.float32)
  eps = rng.normal(size=(3, 3)).astype(np.float32)
  for i, c in enumerate(cls):
    last.bias[...] = jnp.full((4,), -1e4).at[c].set(1e4)
    u, _ = unlabeled_bound(model, x[i : i + 1], eps[i : i + 1], gaussian_x=False)
    l_ = labeled_bound(
      model, x[i : i + 1], np.eye(4, dtype=np.float32)[[c]], eps[i : i + 1], gaussian_x=False
    )
    np.testing.assert_allclose(u, l_, rtol=1e-6)


def test_masked_gaussian_log_prob_is_the_log_prob_of_the_kept_units():
  rng = np.random.default_rng(2)
  mean, log_var, x = (jnp.asarray(rng.normal(size=(3, 5)), jnp.float32) for _ in range(3))
  keep = jnp.array([1.0, 0.0, 1.0, 1.0, 0.0])
  kept = np.array([0, 2, 3])
  np.testing.assert_allclose(
    gaussian_log_prob(mean, log_var, x, keep),
    gaussian_log_prob(mean[:, kept], log_var[:, kept], x[:, kept]),
    rtol=1e-6,
  )


def test_m2_starts_with_a_near_uniform_classifier():
  spread = {}
  for scale in (1e-3, 0.0):  # the authors' N(0, 1e-6) weights; 0: Flax's default initializers
    run = helpers.build_small(tiny_config('vae_m2', init_scale=scale))
    logits = run.method.predict(run.init()['method'], run.dataset.test_images[:32])
    spread[scale] = float(jnp.max(jnp.abs(jax.nn.softmax(logits) - 0.1)))
  assert spread[1e-3] < 0.01 < spread[0.0]


def _m1_means(config, params, images):
  new = lambda: M1(784, config.m1_latent, config.m1_widths, rngs=nnx.Rngs(0))
  model = nnx.merge(nnx.split(nnx.eval_shape(new), nnx.Param, ...)[0], jax.device_get(params))
  x = np.asarray(jax.device_get(images), np.float32).reshape(len(images), -1) / 255
  return np.asarray(model.encoder(x)[0])


@pytest.mark.parametrize('m1_sample', [False, True])
def test_stacked_m1_m2_trains_m1_then_m2(m1_sample):
  run = helpers.build_small(
    tiny_config(
      'vae_m2', stacked=True, num_steps=4, m1_fraction=0.5, m1_sample=m1_sample, m1_keep_std=0.07
    )
  )
  state = run.init()
  phases, kept = [], []
  for step, batch in enumerate(run.pipeline.iterate(0, 4)):
    before = jax.device_get((state['method']['m1'], state['method']['m2']))
    if step == 2:  # the first M2 step picks M1's units from this batch, once
      spread = np.std(_m1_means(run.config, state['method']['m1']['params'], batch['x_u']), axis=0)
    state, metrics = run.train_step(state, batch)
    after = jax.device_get((state['method']['m1'], state['method']['m2']))
    changed = [
      not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y)))
      for x, y in zip(before, after)
    ]
    phases.append(tuple(changed))
    kept.append(np.asarray(jax.device_get(state['method']['keep'])))
    assert np.isfinite(jax.device_get(metrics['loss/m1']))
  assert phases == [(True, False), (True, False), (False, True), (False, True)]
  assert kept[0].all() and kept[1].all()
  np.testing.assert_array_equal(kept[2], spread > 0.07)
  np.testing.assert_array_equal(kept[3], kept[2])
  assert 0 < kept[2].sum() < kept[2].size  # a tiny M1 leaves some units unused, not all
  assert run.sample(state).shape == (10, 28, 28, 1)  # one row of the grid per class


def _ladder():
  return Ladder((6, 5, 4, 3), rngs=nnx.Rngs(0))


def test_ladder_without_noise_and_identity_combinator_reconstructs_clean_z():
  model = _ladder()
  for comb in model.combinators:  # g(z~, u) = z~: v = 1, so z^ = (z~ - mu) + mu
    comb.a[...] = jnp.zeros_like(comb.a[...]).at[9].set(1.0)
  x = jax.random.normal(jax.random.key(0), (8, 6))
  logits_c, zs_c, _, _ = model.encode(x, 0.3, None)  # noise off: no key
  logits, zs, means, stds = model.encode(x, 0.0, None)
  np.testing.assert_array_equal(logits, logits_c)
  z_hat = model.decode(zs_c, logits_c)
  for z, zh in zip(zs, z_hat):
    np.testing.assert_allclose(zh, z, atol=1e-6)
  costs = denoising_costs(zs, z_hat, means, stds)
  # z^_BN = (z^ - mu) / sigma with the clean pre-normalization statistics (Algorithm 1): zero at
  # the input layer, and in general the distance between z and its re-normalization.
  assert float(costs[0]) == 0.0
  for l in range(1, 4):
    expected = np.mean(np.sum((zs[l] - (zs[l] - means[l]) / stds[l]) ** 2, -1)) / zs[l].shape[-1]
    np.testing.assert_allclose(costs[l], expected, rtol=1e-5)
  # When the pre-activations are already standardized the whole cost vanishes.
  unit = [jnp.zeros_like(m) for m in means], [jnp.ones_like(s) for s in stds]
  assert max(float(c) for c in denoising_costs(zs, z_hat, *unit)) < 1e-10


def test_ladder_noise_changes_the_corrupted_path_only():
  model = _ladder()
  x = jax.random.normal(jax.random.key(0), (8, 6))
  _, zs, _, _ = model.encode(x, 0.0, None)
  _, zs_c, _, _ = model.encode(x, 0.3, jax.random.key(1))
  assert all(not np.allclose(a, b) for a, b in zip(zs, zs_c))
  for z in zs[1:]:  # clean targets are batch-normalized
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-3)


def test_m1_test_bound_is_logged_falls_as_m1_trains_and_ignores_batching():
  m1 = dict(stacked=True, m1_fraction=1.0, num_steps=4, m1_lr=1e-3)
  run = helpers.build_small(tiny_config('vae_m2', **m1))
  state = run.init()
  before = run.evaluate(state)['eval/test/m1/negative_bound']
  state, _, _ = helpers.run_steps(run, 4, state)
  after = run.evaluate(state)['eval/test/m1/negative_bound']
  # Per-image keys come from the test index, so the estimate does not depend on the batching.
  rebatched = helpers.build_small(tiny_config('vae_m2', eval_batch_size=100, **m1)).evaluate(state)
  assert after < before - 1, (before, after)  # nats per image; an untrained M1 is at ~550
  np.testing.assert_allclose(rebatched['eval/test/m1/negative_bound'], after, rtol=1e-5)
  # M2 alone has no M1 to report.
  m2 = helpers.build_small(tiny_config('vae_m2'))
  assert not [k for k in m2.evaluate(m2.init()) if 'm1' in k]
