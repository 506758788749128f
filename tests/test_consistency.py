"""Properties of the pseudo-labeling and consistency methods, their backbones and optimizer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxssl import models, parallel
from jaxssl.config import resolve
from jaxssl.errors import UserError
from jaxssl.methods import _classifier as C
from jaxssl.methods import flexmatch, mixmatch, uda, vat
from jaxssl.models.convnets import WideResNet
from jaxssl.train import build
from tests.conftest import tiny_config


def _count(module_fn):
  params = models.split(nnx.eval_shape(module_fn))[1]
  return sum(x.size for x in jax.tree.leaves(params))


def test_wide_resnet_sizes_match_fixmatch():
  # FixMatch reports 1.5M parameters for WRN-28-2 and 23.4M for WRN-28-8 (CIFAR-100).
  assert _count(lambda: WideResNet(3, 10, filters=32, rngs=nnx.Rngs(0))) == 1_469_642
  assert round(_count(lambda: WideResNet(3, 100, filters=128, rngs=nnx.Rngs(0))) / 1e6, 1) == 23.4


def test_wide_resnet_runs_on_cifar_shapes_and_updates_batch_norm():
  net = WideResNet(3, 10, filters=8, rngs=nnx.Rngs(0))
  graph, params, rest = models.split(net)
  x = jax.random.uniform(jax.random.key(0), (4, 32, 32, 3))
  logits, new_rest = models.apply(graph, params, rest, x, True)
  assert logits.shape == (4, 10)
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), rest, new_rest)
  assert all(jax.tree.leaves(changed))
  eval_logits, same_rest = models.apply(graph, params, rest, x, False)
  jax.tree.map(np.testing.assert_array_equal, rest, same_rest)


def _optimizer(**overrides):
  config = resolve(tiny_config('supervised', **overrides))
  return C.optimizer(config)


@pytest.mark.parametrize('mode', ['l2', 'decoupled'])
def test_weight_decay_touches_kernels_only(mode):
  params = {'conv': {'kernel': jnp.ones((3, 3)), 'bias': jnp.ones(3)}, 'bn': {'scale': jnp.ones(3)}}
  opt, lr = _optimizer(
    weight_decay=0.1, weight_decay_mode=mode, momentum=0.0, lr=0.5, lr_schedule='constant'
  )
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = opt.update(zeros, opt.init(params), params)
  np.testing.assert_allclose(updates['conv']['kernel'], -0.5 * 0.1 * np.ones((3, 3)))
  np.testing.assert_array_equal(updates['conv']['bias'], 0.0)
  np.testing.assert_array_equal(updates['bn']['scale'], 0.0)


def test_fixmatch_cosine_schedule():
  _, lr = _optimizer(num_steps=1000)
  np.testing.assert_allclose(lr(0), 0.03)
  np.testing.assert_allclose(lr(1000), 0.03 * np.cos(7 * np.pi / 16), rtol=1e-6)


def test_bad_choice_is_a_user_error():
  with pytest.raises(UserError, match="'backbone' must be one of"):
    build(tiny_config('fixmatch', backbone='resnet9000'))


def _steps(method, n, **overrides):
  """States after each of n steps on one device, and their metrics."""
  run = build(tiny_config(method, **overrides), mesh=parallel.make_mesh(jax.devices()[:1]))
  state, states, metrics = run.init(), [], []
  for batch in run.pipeline.iterate(0, n):
    state, m = run.train_step(state, batch)
    states.append(jax.device_get(state))
    metrics.append(jax.device_get(m))
  return run, states, metrics


def test_fixmatch_without_confident_labels_learns_from_labels_only():
  # τ > 1: no pseudo-label is ever kept, so λu cannot change the update.
  _, with_u, metrics = _steps('fixmatch', 1, threshold=1.01, lambda_u=1.0)
  _, without_u, _ = _steps('fixmatch', 1, threshold=1.01, lambda_u=0.0)
  assert metrics[0]['monitor/mask_rate'] == 0 and metrics[0]['loss/unsup'] == 0
  jax.tree.map(np.testing.assert_array_equal, with_u[0]['method'], without_u[0]['method'])
  # And the comparison can fail: with τ = 0 every pseudo-label counts.
  _, kept, metrics = _steps('fixmatch', 1, threshold=0.0, lambda_u=1.0)
  assert metrics[0]['monitor/mask_rate'] == 1 and metrics[0]['loss/unsup'] > 0
  assert not np.array_equal(
    kept[0]['method']['params']['head']['kernel'],
    without_u[0]['method']['params']['head']['kernel'],
  )


def test_mean_teacher_teacher_is_the_ema_of_the_student():
  run, states, _ = _steps('mean_teacher', 3, ema_decay=0.6)
  init = jax.device_get(run.init())['method']
  teacher = init['ema']
  for step, state in enumerate(states):
    decay = min(0.6, 1 - 1 / (step + 1))
    student = state['method']['params']
    teacher = jax.tree.map(lambda t, s, d=decay: d * t + (1 - d) * s, teacher, student)
    jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
      teacher,
      state['method']['ema'],
    )


def test_flexmatch_remembers_confident_labels_per_example():
  run, states, metrics = _steps('flexmatch', 2, threshold=0.0)
  selected = states[-1]['method']['selected']
  batch = run.pipeline.host_batch(1)
  assert np.all(selected[batch['i_u']] >= 0)  # τ = 0: every example in the batch is recorded
  assert (selected >= 0).sum() <= 2 * len(batch['i_u'])


def test_flexmatch_class_thresholds():
  tau, n = 0.95, 100
  nothing = -np.ones(n, np.int32)
  np.testing.assert_array_equal(flexmatch.class_thresholds(nothing, 10, tau, True), 0.0)
  all_three = np.full(n, 3, np.int32)
  t = flexmatch.class_thresholds(all_three, 10, tau, True)
  np.testing.assert_allclose(t[3], tau)  # β = 1 and M(1) = 1
  np.testing.assert_array_equal(np.delete(t, 3), 0.0)
  # Warm-up: 80 unused examples dominate the 20 of class 0, so β(0) = 20/80 and M(β) = β/(2-β).
  mixed = np.where(np.arange(n) < 20, 0, -1).astype(np.int32)
  beta = 20 / 80
  np.testing.assert_allclose(
    flexmatch.class_thresholds(mixed, 10, tau, True)[0], tau * beta / (2 - beta)
  )
  np.testing.assert_allclose(flexmatch.class_thresholds(mixed, 10, tau, False)[0], tau)


def test_mixmatch_sharpen_and_mixup():
  probs = jax.nn.softmax(jax.random.normal(jax.random.key(0), (16, 10)))
  sharp = mixmatch.sharpen(probs, 0.5)
  np.testing.assert_allclose(sharp.sum(-1), 1.0, rtol=1e-6)
  entropy = lambda p: -jnp.sum(p * jnp.log(p), -1)
  assert np.all(entropy(sharp) < entropy(probs))
  np.testing.assert_allclose(mixmatch.sharpen(probs, 1.0), probs, rtol=1e-6)
  x = jnp.arange(8.0)[:, None, None, None] * jnp.ones((8, 2, 2, 1))
  y = jax.nn.one_hot(jnp.arange(8), 8)
  mixed_x, mixed_y = mixmatch.mixup(jax.random.key(1), x, y, 0.75)
  own = jnp.diagonal(mixed_y)  # λ' of each example's own label
  assert np.all(own >= 0.5 - 1e-6)
  np.testing.assert_allclose(mixed_y.sum(-1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(mixed_x[:, 0, 0, 0], mixed_y @ jnp.arange(8.0), rtol=1e-5)


def test_vat_perturbation_has_norm_eps_and_is_adversarial():
  w = jax.random.normal(jax.random.key(0), (4 * 4, 5))
  logits_fn = lambda x: x.reshape(x.shape[0], -1) @ w
  x = jax.random.uniform(jax.random.key(1), (6, 4, 4, 1))
  r = vat.adversarial_perturbation(
    logits_fn, x, logits_fn(x), jax.random.key(2), xi=1e-6, eps=2.0, iterations=1
  )
  np.testing.assert_allclose(jnp.sqrt(jnp.sum(r**2, (1, 2, 3))), 2.0, rtol=1e-5)
  random = 2.0 * vat._unit(jax.random.normal(jax.random.key(3), x.shape))
  kl = lambda d: vat.kl_divergence(logits_fn(x), logits_fn(x + d))
  assert np.all(kl(r) > kl(random))


def test_uda_training_signal_annealing():
  assert float(uda.tsa_threshold('none', 0, 100, 10)) == 1.0
  np.testing.assert_allclose(uda.tsa_threshold('linear', 0, 100, 10), 0.1)
  np.testing.assert_allclose(uda.tsa_threshold('linear', 100, 100, 10), 1.0)
  np.testing.assert_allclose(uda.tsa_threshold('exp', 100, 100, 10), 1.0)
  np.testing.assert_allclose(uda.tsa_threshold('log', 0, 100, 10), 0.1)


def test_ramps():
  assert float(C.ramp(0, 100, 0.4)) == 0.0 and float(C.ramp(40, 100, 0.4)) == 1.0
  np.testing.assert_allclose(C.ramp(0, 100, 0.4, 'sigmoid'), np.exp(-5.0))
  assert float(C.ramp(0, 100, 0.0)) == 1.0
