"""The contract every method file meets; adding a method needs no edit here."""

import jax
import numpy as np
import pytest

from jaxssl import methods, parallel
from jaxssl.checkpoint import Checkpoints
from jaxssl.train import build
from tests.conftest import tiny_config


@pytest.fixture(scope='module', params=methods.available())
def built(request, mnist):
  return build(tiny_config(request.param))


def test_two_steps_finite_one_trace(built):
  traces = []
  step = built.train_step

  state = built.init()
  batches = built.pipeline.iterate(0, 2)
  for batch in batches:
    before = step._cache_size()
    state, metrics = step(state, batch)
    traces.append(step._cache_size() - before)
  assert traces[0] == 1 and traces[1] == 0, 'the step must compile once, then be reused'
  metrics = jax.device_get(metrics)
  assert all(k.split('/')[0] in ('loss', 'monitor') for k in metrics), sorted(metrics)
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  assert int(state['step']) == 2


def test_predict_shape_and_eval(built):
  state = built.init()
  images = built.dataset.test_images[:8]
  logits = built.method.predict(state['method'], images)
  assert logits.shape == (8, built.dataset.num_classes)
  for fn in built.method.extra_predictors.values():
    assert fn(state['method'], images).shape == logits.shape
  result = built.evaluate(state)
  # The sharded, padded evaluation counts what predict gets wrong on every test image, once.
  x, y = built.dataset.test_images, built.dataset.test_labels
  wrong = sum(
    int(
      (
        np.argmax(built.method.predict(state['method'], x[i : i + 2500]), -1) != y[i : i + 2500]
      ).sum()
    )
    for i in range(0, len(y), 2500)
  )
  assert result['eval/test/errors'] == wrong
  if built.sample is not None:
    images = np.asarray(built.sample(state))
    assert 0 < len(images) <= 16 and images.shape[1:] == built.dataset.image_shape
    assert images.min() >= 0 and images.max() <= 1


def test_checkpoint_round_trip(built, tmp_path):
  state = built.init()
  state, _ = built.train_step(state, next(built.pipeline.iterate(0, 1)))
  expected = jax.device_get(state)
  ckpts = Checkpoints(str(tmp_path), keep=2)
  ckpts.save(1, state, {'step': 1})
  ckpts.wait()
  restored, meta = ckpts.restore(1, built.abstract_state)
  ckpts.close()
  assert meta == {'step': 1}
  jax.tree.map(np.testing.assert_array_equal, expected, jax.device_get(restored))
  leaf = jax.tree.leaves(restored)[0]
  assert leaf.sharding.is_equivalent_to(parallel.replicated(built.mesh), leaf.ndim)


def test_known_label_accuracy_ignores_unknown_labels():
  logits = jax.numpy.eye(4)  # predicts 0, 1, 2, 3
  labels = jax.numpy.array([0, 2, -1, 3])  # one wrong, one unknown
  np.testing.assert_allclose(methods.known_label_accuracy(logits, labels), 2 / 3)
  assert float(methods.known_label_accuracy(logits, -jax.numpy.ones(4, int))) == 0.0
