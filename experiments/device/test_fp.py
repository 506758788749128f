"""Each method's first 3 steps (tests/helpers.first_steps: tiny config, small real-MNIST subset,
one device) digested leaf by leaf, and on the device machine compared with the digests made on
this CPU.

FP_WRITE=path writes the digests (on the device too, so a comparison can be redone here);
FP_REF=path compares with them (FP_TABLE=path: the table). It reports and asserts nothing about
the differences: on a GPU they are TF32's unless JAX_DEFAULT_MATMUL_PRECISION=highest, and the
table is what a person reads. As tests/test_methods.py::test_first_steps_are_the_recorded_ones,
the CPU's own check, it runs VAT with the exact Hessian-vector product (ξ = 1e-6 makes its
direction float noise) and reports the update without the leaves whose update is rounding noise
by construction (MixMatch's convolution biases before batch norm, under Adam) as well as with."""

import json
import os
import re

import jax
import numpy as np
import pytest

from tests import helpers
from tests.test_methods import CASES, NOISE_ONLY, OVERRIDES

if os.environ.get('FP_CASES'):  # a comma list: a subset of the cases, run in its order
  CASES = [c for c in os.environ['FP_CASES'].split(',') if c in CASES]

_DIGESTS = {}


def _update_rel(d, r, keep=lambda leaf: True):
  """|device update - CPU update| / |CPU update| over the leaves `keep` accepts, and the leaf
  whose own update differs most (relative to its norm)."""
  du = {k: np.subtract(d['p3'][k], v) for k, v in d['p0'].items() if keep(k)}
  dr = {k: np.subtract(r['p3'][k], v) for k, v in r['p0'].items() if keep(k)}
  num = np.sqrt(sum(np.sum((du[k] - dr[k]) ** 2) for k in dr))
  den = np.sqrt(sum(np.sum(v**2) for v in dr.values()))
  worst = max(dr, key=lambda k: np.linalg.norm(du[k] - dr[k]) / (np.linalg.norm(dr[k]) + 1e-30))
  return num / (den + 1e-30), worst


def _row(case, d, r):
  init_rel = max(
    np.max(np.abs(np.subtract(d['p0'][k], v)) / (np.abs(v) + 1e-12)) for k, v in r['p0'].items()
  )
  upd_rel, _ = _update_rel(d, r)
  noise = re.compile(NOISE_ONLY.get(case.split('+')[0], '$^'))
  clean_rel, worst = _update_rel(d, r, lambda leaf: not noise.search(leaf))
  mrel, mkey = 0.0, ''
  for step, (m, mr) in enumerate(zip(d['metrics'], r['metrics'])):
    for k, v in mr.items():
      rel = abs(m[k] - v) / max(abs(v), 1e-6)
      if rel > mrel:
        mrel, mkey = rel, f'{k} @ step {step + 1}'
  return (
    f'| {case} | {init_rel:.1e} | {upd_rel:.1e} | {clean_rel:.1e} ({worst}) | {mrel:.1e} ({mkey}) |'
  )


def _emit(line):
  """Printed and appended to FP_TABLE at once: a case that hangs past the call's limit (vae_m2 on
  an H100, 2026-11-27) must not take the finished cases' rows with it."""
  print('\n' + line, flush=True)
  if os.environ.get('FP_TABLE'):
    with open(os.environ['FP_TABLE'], 'a') as f:
      f.write(line + '\n')


@pytest.mark.parametrize('case', CASES)
def test_digest(case):
  if case == CASES[0] and os.environ.get('FP_REF'):
    _emit(
      f'device: {jax.devices()[0].device_kind}; jax {jax.__version__}; matmul precision '
      f'{jax.config.jax_default_matmul_precision}\n'
      '| case | init max rel diff | 3-step update rel diff | the same without noise-only leaves '
      '(worst leaf) | metrics max rel diff (worst key) |\n'
      '|---|---|---|---|---|'
    )
  run, states, metrics = helpers.first_steps(case, **OVERRIDES.get(case.split('+')[0], {}))
  init = jax.device_get(run.init())
  _DIGESTS[case] = {
    'p0': helpers.leaf_digests(init['method']),
    'p3': helpers.leaf_digests(states[-1]['method']),
    'metrics': [{k: float(v) for k, v in m.items()} for m in metrics],
  }
  if os.environ.get('FP_WRITE'):
    with open(os.environ['FP_WRITE'], 'w') as f:
      json.dump(_DIGESTS, f)
  if os.environ.get('FP_REF'):
    _emit(_row(case, _DIGESTS[case], json.load(open(os.environ['FP_REF']))[case]))
