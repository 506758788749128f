"""The contract every method file meets; adding a method needs no edit here.

Each case's tiny run and its first steps come from helpers.first_steps, which the unlabeled-term,
sharding and per-method tests elsewhere share (one compiled step per case)."""

import jax
import numpy as np
import pytest

from jaxssl import core, methods, parallel
from jaxssl.checkpoint import Checkpoints
from tests import helpers

# Every method, and the two whose CTAugment state differs (FixMatch's, ReMixMatch's probes).
CASES = [*methods.available(), 'fixmatch+ctaugment', 'remixmatch+ctaugment']


@pytest.mark.parametrize('case', CASES)
def test_steps_give_finite_metrics_from_one_trace(case):
  run, states, metrics = helpers.first_steps(case)
  # Every step after the first reuses its program: a state whose structure, dtype or weak type
  # changed in a step would make a second one.
  assert run.train_step._cache_size() == 1
  assert all(k.split('/')[0] in ('loss', 'monitor') for k in metrics[-1]), sorted(metrics[-1])
  for m in metrics:
    assert all(np.isfinite(v) for v in m.values()), m
  assert [int(s['step']) for s in states] == [1, 2, 3]


@pytest.mark.parametrize('case', CASES)
def test_training_moves_what_predict_reads(case):
  # predict reads the evaluated model (an average where the method keeps one), which the
  # optimizer steps must change; a predictor reading a stale copy fails here.
  run, states, _ = helpers.first_steps(case)
  x = run.dataset.test_images[:8]
  before = np.asarray(run.method.predict(jax.device_get(run.init())['method'], x))
  after = np.asarray(run.method.predict(states[-1]['method'], x))
  assert np.isfinite(before).all(), 'predict must work before the first step'
  assert before.shape == after.shape == (8, run.dataset.num_classes)
  assert np.abs(before - after).max() > 1e-6
  for fn in run.method.extra_predictors.values():
    assert fn(states[-1]['method'], x).shape == after.shape


@pytest.mark.parametrize('case', CASES)
def test_padded_eval_counts_every_test_image_once(case):
  run, states, _ = helpers.first_steps(case)
  state = jax.device_put(states[-1], parallel.replicated(run.mesh))
  x, y = run.dataset.test_images, run.dataset.test_labels
  assert len(y) % run.config.eval_batch_size, 'the last eval batch must be padded'
  wrong = int((np.argmax(run.method.predict(states[-1]['method'], x), -1) != y).sum())
  assert run.evaluate(state)['eval/test/errors'] == wrong
  if run.sample is not None:
    images = np.asarray(run.sample(state))
    assert 0 < len(images) <= 16 and images.shape[1:] == run.dataset.image_shape
    assert images.min() >= 0 and images.max() <= 1


@pytest.mark.parametrize('case', CASES)
def test_checkpoint_restores_the_whole_state(case, tmp_path):
  # The state after step 1 through an Orbax checkpoint, restored as a run restores it, then step
  # 2: bit-identical to the uninterrupted step 2. A piece of state left out of the pytree, or
  # restored with another dtype, shape or placement, fails here (test_train.py resumes a whole
  # run, data position and logs included).
  run, states, _ = helpers.first_steps(case)
  ckpts = Checkpoints(str(tmp_path), keep=1)
  ckpts.save(1, jax.device_put(states[0], parallel.replicated(run.mesh)), {'step': 1})
  ckpts.wait()
  restored, meta = ckpts.restore(1, run.abstract_state)
  ckpts.close()
  assert meta == {'step': 1}
  state, _ = run.train_step(restored, next(run.pipeline.iterate(1, 2)))
  assert run.train_step._cache_size() == 1, 'the restored state must fit the compiled step'
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state), states[1])


def test_known_label_accuracy_ignores_unknown_labels():
  logits = jax.numpy.eye(4)  # predicts 0, 1, 2, 3
  labels = jax.numpy.array([0, 2, -1, 3])  # one wrong, one unknown
  np.testing.assert_allclose(core.known_label_accuracy(logits, labels), 2 / 3)
  assert float(core.known_label_accuracy(logits, -jax.numpy.ones(4, int))) == 0.0
