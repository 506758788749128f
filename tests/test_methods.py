"""The contract every method file meets; adding a method needs no edit here.

Each case's tiny run and its first steps come from helpers.first_steps, which the unlabeled-term,
sharding and per-method tests elsewhere share (one compiled step per case)."""

import functools
import importlib.metadata
import json
import os
import re
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxssl import core, methods, parallel
from jaxssl.checkpoint import Checkpoints
from tests import helpers

# Every method, and the two whose CTAugment state differs (FixMatch's, ReMixMatch's probes).
CASES = [*methods.available(), 'fixmatch+ctaugment', 'remixmatch+ctaugment']
RECORDED = Path(__file__).parent / 'data' / 'first_steps'


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
  if 'raw' in run.method.extra_predictors:  # it keeps an average, and predict must read it
    raw = np.asarray(run.method.extra_predictors['raw'](states[-1]['method'], x))
    assert np.abs(raw - after).max() > 1e-6, 'predict reads the raw weights, not their average'


def _first_step_on(run, host) -> dict:
  """The method state after step 0 on the host batch `host` (the case's compiled step)."""
  state, _ = run.train_step(run.init(), parallel.to_device(host, run.mesh))
  return jax.device_get(state)['method']


@pytest.mark.parametrize('case', [c for c in CASES if c != 'supervised'])  # no unlabeled batch
def test_hidden_labels_of_unlabeled_images_never_reach_the_state(case):
  # Batches carry the unlabeled images' true labels for the monitors (pseudo-label accuracy)
  # only: other labels there must leave every entry of the state as it was.
  run, states, _ = helpers.first_steps(case)
  host = run.pipeline.host_batch(0)
  wrong = dict(host, y_u=(host['y_u'] + 1) % run.dataset.num_classes)
  jax.tree.map(np.testing.assert_array_equal, _first_step_on(run, wrong), states[0]['method'])


# The generative methods keep their labeled path blind to the unlabeled images (no batch
# statistics across the two), so D's, the Ladder's and M2's weights after a step on other
# unlabeled images differ only through the unlabeled term: the test of that term these methods
# get (the classifiers', whose batch norm mixes the two, switch lambda_u off instead:
# test_consistency.py). Where each keeps the weights its unlabeled term trains:
UNLABELED_TRAINS = {
  'improved_gan': ('d', 'params'),
  'ladder': ('params',),
  'vae_m2': ('m2', 'params'),
}


@pytest.mark.parametrize('case', UNLABELED_TRAINS)
def test_unlabeled_images_move_the_weights(case):
  run, states, _ = helpers.first_steps(case)
  host = run.pipeline.host_batch(0)
  other = dict(host, x_u=run.pipeline.host_batch(1)['x_u'])
  assert not np.array_equal(other['x_u'], host['x_u'])
  pick = lambda state: jax.tree.leaves(
    functools.reduce(lambda tree, key: tree[key], UNLABELED_TRAINS[case], state)
  )
  moved = [np.abs(a - b).max() for a, b in zip(pick(_first_step_on(run, other)),
    pick(states[0]['method']))]  # fmt: skip
  assert max(moved) > 1e-6, 'the unlabeled term must have a gradient'


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


# How far another compile of the same step moved the recorded numbers on this CPU (XLA's default
# options against the suite's -O0 and elemental emitters, which round differently, as another CPU
# does), x10: < 1e-5 of a leaf's update but in three methods, where Adam's first steps normalise
# gradients that are ~0 at many entries (the Ladder's first kernel: 1.4e-3; M2's classifier,
# which starts at N(0, 1e-6): 8.3e-4) or SimMatch's momentum of its first kernel (2.5e-4).
UPDATE_NOISE = {'ladder': 2e-2, 'vae_m2': 1e-2, 'simmatch': 3e-3}
# Leaves whose update is rounding noise: a convolution's bias right before batch norm gets no
# gradient, so Adam (MixMatch) steps it by ±lr at random, and the running means see that bias.
NOISE_ONLY = {'mixmatch': r'convs/\d+/bias|bns/\d+/mean'}
# VAT's power iteration takes a finite difference at xi = 1e-6, whose direction is float noise
# (its loss moved 5-12 % between the two compiles): the exact Hessian-vector product here.
OVERRIDES = {'vat': {'xi': 0.0}}


@pytest.mark.skipif(jax.default_backend() != 'cpu', reason='recorded on CPU; GPUs use TF32')
@pytest.mark.parametrize('case', CASES)
def test_first_steps_are_the_recorded_ones(case):
  # Each case's init, 3-step update and metrics against digests recorded on this project's CPU
  # with the versions in pyproject.toml: a change to a method's maths (a loss term, the order of
  # its updates, an init) fails here (λu x 1.001 moved FixMatch's update by 1.2e-3; the Ladder's
  # denoising weights x 1.01 by 8e-2), float rounding does not. Re-record after an intended change,
  # a renamed or added state leaf or metric, or a jax/flax/optax upgrade that moves them, and say
  # why in the commit: JAXSSL_RECORD=1 bash tests/run.sh -k first_steps_are_the_recorded
  method = case.split('+')[0]
  run, states, metrics = helpers.first_steps(case, **OVERRIDES.get(method, {}))
  init = helpers.leaf_digests(jax.device_get(run.init())['method'])
  last = helpers.leaf_digests(states[-1]['method'])
  now = {
    'init': init,
    'update': {k: list(np.subtract(last[k], v)) for k, v in init.items()},
    'metrics': [{k: float(v) for k, v in sorted(m.items())} for m in metrics],
  }
  versions = {name: importlib.metadata.version(name) for name in ('jaxlib', 'flax', 'optax')}
  path = RECORDED / f'{case}.json'
  if os.environ.get('JAXSSL_RECORD'):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({'versions': versions, **now}) + '\n')
  ref = json.loads(path.read_text())
  if ref['versions'] != versions:  # another XLA or initializer may round or draw differently
    pytest.skip(f'recorded with {ref["versions"]}, running {versions}: re-record (see above)')
  assert list(now['init']) == list(ref['init']), 'the state has other leaves: re-record'
  for leaf, value in ref['init'].items():
    np.testing.assert_allclose(now['init'][leaf], value, rtol=5e-5, atol=1e-6, err_msg=leaf)
  scale = max(np.linalg.norm(v) for v in ref['update'].values())
  noise_only = re.compile(NOISE_ONLY.get(method, '$^'))
  for leaf, value in ref['update'].items():
    if noise_only.search(leaf):
      continue
    moved = np.linalg.norm(np.subtract(now['update'][leaf], value))
    allowed = UPDATE_NOISE.get(method, 1e-4) * np.linalg.norm(value) + 1e-6 * scale
    assert moved <= allowed, (
      f'{leaf}: its 3-step update moved by {moved:.1e} (allowed {allowed:.1e})'
    )
  assert [list(m) for m in now['metrics']] == [list(m) for m in ref['metrics']]
  for step, (m, r) in enumerate(zip(now['metrics'], ref['metrics']), 1):
    for key, value in r.items():
      assert m[key] == pytest.approx(value, rel=1e-4, abs=1e-6), (step, key, m[key], value)


def test_known_label_accuracy_ignores_unknown_labels():
  logits = jax.numpy.eye(4)  # predicts 0, 1, 2, 3
  labels = jax.numpy.array([0, 2, -1, 3])  # one wrong, one unknown
  np.testing.assert_allclose(core.known_label_accuracy(logits, labels), 2 / 3)
  assert float(core.known_label_accuracy(logits, -jax.numpy.ones(4, int))) == 0.0
