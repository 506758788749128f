"""What tests share: tiny configs, a small real-MNIST subset, a one-device mesh, a step loop.

Most tests check behaviour, not scale, so they build on `small()` (2,000 training and 500 test
digits of the real MNIST) and one device; only the sharding tests use the eight CPU devices that
conftest.py creates.
"""

import functools

import jax
import numpy as np

from jaxssl import parallel
from jaxssl.config import base_config
from jaxssl.data import datasets
from jaxssl.train import build


@functools.cache
def mnist() -> datasets.Dataset:
  return datasets.load('mnist')


@functools.cache
def small(train: int = 2000, test: int = 500) -> datasets.Dataset:
  """The first `train` training and `test` test digits of MNIST (>= 180 of each class in train)."""
  full = mnist()
  return datasets.Dataset(
    'mnist',
    10,
    full.train_images[:train],
    full.train_labels[:train],
    full.test_images[:test],
    full.test_labels[:test],
  )


_make_mesh = parallel.make_mesh  # tests may patch parallel.make_mesh


def one_device():
  return _make_mesh(jax.devices()[:1])


# Overrides that make each method's unlabeled term count from the first step (no ramp, no
# threshold): tests then see every branch of a step, and a method whose unlabeled loss has no
# gradient fails tests/test_consistency.py::test_unlabeled_term_changes_the_update.
ACTIVE_FROM_STEP_0 = {
  'pseudo_label': dict(threshold=0.0, ramp_steps=0),
  'pi_model': dict(ramp_steps=0),
  'mean_teacher': dict(ramp_steps=0),
  'vat': dict(ramp_steps=0, entmin_weight=0.0),
  'mixmatch': dict(ramp_steps=0),
  'uda': dict(threshold=0.0),
  'fixmatch': dict(threshold=0.0),
  'flexmatch': dict(threshold=0.0),
  'freematch': {},  # its thresholds start at 1/C: nearly every pseudo-label counts at step 0
  'softmatch': {},  # μ_t starts at 1/C: nearly every weight is 1 at step 0
  'adamatch': dict(threshold=0.0),
  'dash': dict(warmup_steps=0),  # ρ from the first batch: about half its pseudo-labels count
  'simmatch': dict(threshold=0.0, bank_warmup_steps=0),
  'remixmatch': dict(ramp_steps=0),
}


def tiny_config(method: str, active: bool = True, **overrides):
  """A config that trains `method` for a couple of steps on MNIST-shaped data, its unlabeled
  term on from the first step unless `active` is False (then the method's own schedule).

  Tests that build the same config share its compiled programs (conftest.py's compilation
  cache), so prefer these defaults to one-off values."""
  config = base_config(method)
  config.update(
    dict(
      num_steps=2,
      batch_size=16,
      labels_per_class=10,
      log_every=1,
      eval_every=2,
      checkpoint_every=2,
      eval_batch_size=200,
      num_samples=16,
      init_examples=64,
    )
  )
  if 'backbone' in config:  # the discriminative methods: a tiny CNN, 2 unlabeled per labeled
    config.update(dict(backbone='cnn', cnn_widths=(8, 16), uratio=2, flip=False))
  config.update(ACTIVE_FROM_STEP_0.get(method, {}) if active else {})
  config.update(overrides)
  return config


def build_small(config, mesh=None, dataset=None):
  """`build` on the small subset and one device unless told otherwise."""
  return build(config, mesh or one_device(), dataset or small())


def optimized(run, state, batch):
  """run.train_step compiled at XLA's full optimization (conftest.py lowers it for the rest of
  the suite), for tests that train for hundreds of steps."""
  return run.train_step.lower(state, batch).compile({'xla_backend_optimization_level': 2})


def error_after_training(config, steps: int, dataset=None) -> float:
  """Trains `config` for `steps` steps on one device (MNIST unless `dataset`), the step compiled
  at XLA -O2 (the suite's -O0 would make runs of hundreds of steps take minutes), and returns
  the test error."""
  run = build_small(config, dataset=dataset or mnist())
  state, step = run.init(), None
  for batch in run.pipeline.iterate(0, steps):
    step = step or optimized(run, state, batch)
    state, _ = step(state, batch)
  return run.evaluate(state)['eval/test/error']


@functools.cache
def first_steps(case: str, n: int = 3, **overrides):
  """(run, host states after each of n steps, host metrics of each step) of `case`, a method or
  'method+strong_augment', built from tiny_config on the small subset and one device.

  Cached, and read-only for the tests that share it: the contract, unlabeled-term, sharding,
  checkpoint and per-method tests of one case then compile its step once (conftest.py puts the
  tests of one case on one pytest-xdist worker)."""
  method, _, strong = case.partition('+')
  config = tiny_config(method, **({'strong_augment': strong} if strong else {}), **overrides)
  run = build_small(config)
  _, states, metrics = run_steps(run, n)
  return run, states, metrics


def run_steps(run, n: int, state=None, start: int = 0):
  """(final state, host copy of the state after each step, host metrics of each step)."""
  state = run.init() if state is None else state
  states, metrics = [], []
  for batch in run.pipeline.iterate(start, start + n):
    state, m = run.train_step(state, batch)
    states.append(jax.device_get(state))
    metrics.append(jax.device_get(m))
  return state, states, metrics


def start_cli_train(config: str, workdir, *args, **popen_kwargs):
  """`python -m jaxssl train --config=CONFIG --workdir=WORKDIR ARGS` in a subprocess, text mode,
  stderr piped."""
  import subprocess
  import sys

  cmd = [sys.executable, '-m', 'jaxssl', 'train', f'--config={config}', f'--workdir={workdir}']
  return subprocess.Popen([*cmd, *args], stderr=subprocess.PIPE, text=True, **popen_kwargs)


def leaf_digests(tree, k: int = 4) -> dict[str, list[float]]:
  """{leaf path: k fixed random projections (float64)} of every float leaf: a few numbers that
  move with any entry. Linear, so a difference of two trees projects to the difference of their
  digests."""
  out = {}
  for i, (path, leaf) in enumerate(jax.tree_util.tree_flatten_with_path(tree)[0]):
    a = np.asarray(leaf)
    if not np.issubdtype(a.dtype, np.floating) or a.size == 0:
      continue
    r = np.random.default_rng([i, a.size]).standard_normal((k, a.size))
    out[jax.tree_util.keystr(path, simple=True, separator='/')] = (
      r @ a.astype(np.float64).ravel()
    ).tolist()
  return out


def digest(tree, k: int = 4) -> np.ndarray:
  """leaf_digests of every float leaf, concatenated."""
  values = list(leaf_digests(tree, k).values())
  return np.concatenate(values) if values else np.zeros(0)
