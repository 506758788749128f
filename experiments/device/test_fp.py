"""Each method's first 3 steps (tests/helpers.first_steps: tiny config, small real-MNIST subset,
one device) digested, and on the device machine compared with the digests made on this CPU.

FP_WRITE=path writes the digests; FP_REF=path compares with them (FP_TABLE=path: the table). It
reports and asserts nothing about the differences: on a GPU they are TF32's unless
JAX_DEFAULT_MATMUL_PRECISION=highest, and the table is what a person reads.
tests/test_methods.py::test_first_steps_are_the_recorded_ones is the CPU's own check."""

import json
import os

import jax
import numpy as np
import pytest

from tests import helpers
from tests.test_methods import CASES

if os.environ.get('FP_CASES'):  # a comma list: a subset of the cases, run in its order
  CASES = [c for c in os.environ['FP_CASES'].split(',') if c in CASES]

_DIGESTS = {}


def _row(case, d, r):
  p0, q0 = np.array(d['p0']), np.array(r['p0'])
  init_rel = np.max(np.abs(p0 - q0) / (np.abs(q0) + 1e-12))
  du, dr = np.array(d['p3']) - p0, np.array(r['p3']) - q0
  upd_rel = np.linalg.norm(du - dr) / (np.linalg.norm(dr) + 1e-30)
  mrel, mkey = 0.0, ''
  for step, (m, mr) in enumerate(zip(d['metrics'], r['metrics'])):
    for k, v in mr.items():
      rel = abs(m[k] - v) / max(abs(v), 1e-6)
      if rel > mrel:
        mrel, mkey = rel, f'{k} @ step {step + 1}'
  return f'| {case} | {init_rel:.1e} | {upd_rel:.1e} | {mrel:.1e} ({mkey}) |'


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
      '| case | init max rel diff | 3-step update rel diff | metrics max rel diff (worst key) |\n'
      '|---|---|---|---|'
    )
  run, states, metrics = helpers.first_steps(case)
  init = jax.device_get(run.init())
  _DIGESTS[case] = {
    'p0': helpers.digest(init['method']).tolist(),
    'p3': helpers.digest(states[-1]['method']).tolist(),
    'metrics': [{k: float(v) for k, v in m.items()} for m in metrics],
  }
  if os.environ.get('FP_WRITE'):
    with open(os.environ['FP_WRITE'], 'w') as f:
      json.dump(_DIGESTS, f)
  if os.environ.get('FP_REF'):
    _emit(_row(case, _DIGESTS[case], json.load(open(os.environ['FP_REF']))[case]))
