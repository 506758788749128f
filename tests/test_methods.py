"""The contract every method file meets; adding a method needs no edit here."""

import chex
import jax
import numpy as np
import pytest

from jaxssl import core, methods
from tests import helpers


@pytest.fixture(scope='module', params=methods.available())
def trained(request):
  """A method built on the small subset, its predictions at init, and its state after two steps
  of a step that may be traced once only (one compile per method for the whole module)."""
  run = helpers.build_small(helpers.tiny_config(request.param))
  chex.clear_trace_counter()  # every method's step is the same `step_fn` of `build`
  step = jax.jit(chex.assert_max_traces(run.train_step.__wrapped__, n=1), donate_argnums=0)
  state = run.init()
  x = run.dataset.test_images[:8]
  before = np.asarray(run.method.predict(state['method'], x))
  for batch in run.pipeline.iterate(0, 2):  # the second step must reuse the first's trace
    state, metrics = step(state, batch)
  return run, before, state, jax.device_get(metrics)


def test_two_steps_give_finite_metrics_from_one_trace(trained):
  _, _, state, metrics = trained
  assert all(k.split('/')[0] in ('loss', 'monitor') for k in metrics), sorted(metrics)
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  assert int(state['step']) == 2


def test_training_moves_what_predict_reads(trained):
  # predict reads the evaluated model (an average where the method keeps one), which two
  # optimizer steps must change; a predictor reading a stale copy fails here.
  run, before, state, _ = trained
  x = run.dataset.test_images[:8]
  after = np.asarray(run.method.predict(state['method'], x))
  assert np.isfinite(before).all(), 'predict must work before the first step'
  assert before.shape == after.shape == (8, run.dataset.num_classes)
  assert np.abs(before - after).max() > 1e-6
  for fn in run.method.extra_predictors.values():
    assert fn(state['method'], x).shape == after.shape


def test_padded_eval_counts_every_test_image_once(trained):
  run, _, state, _ = trained
  x, y = run.dataset.test_images, run.dataset.test_labels
  assert len(y) % run.config.eval_batch_size, 'the last eval batch must be padded'
  wrong = int((np.argmax(run.method.predict(state['method'], x), -1) != y).sum())
  assert run.evaluate(state)['eval/test/errors'] == wrong
  if run.sample is not None:
    images = np.asarray(run.sample(state))
    assert 0 < len(images) <= 16 and images.shape[1:] == run.dataset.image_shape
    assert images.min() >= 0 and images.max() <= 1


def test_known_label_accuracy_ignores_unknown_labels():
  logits = jax.numpy.eye(4)  # predicts 0, 1, 2, 3
  labels = jax.numpy.array([0, 2, -1, 3])  # one wrong, one unknown
  np.testing.assert_allclose(core.known_label_accuracy(logits, labels), 2 / 3)
  assert float(core.known_label_accuracy(logits, -jax.numpy.ones(4, int))) == 0.0
