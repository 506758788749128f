"""Throughput engineering: compute_dtype=bfloat16 (the conv backbones compute in bfloat16 while
parameters, optimizer state, batch-norm statistics and losses stay float32: a step stays close to
the float32 one and training still learns) and the bench's FLOP count, MFU and backbone split."""

import types

import jax
import numpy as np
import pytest

from experiments.configs import mnist_ssl
from jaxssl import parallel, xla
from jaxssl.errors import UserError
from tests import helpers
from tests.helpers import tiny_config


def _one_step(config):
  run = helpers.build_small(config)
  state = run.init()
  before = jax.device_get(state)
  state, metrics = run.train_step(state, next(run.pipeline.iterate(0, 1)))
  return before, jax.device_get(state), jax.device_get(metrics)


@pytest.mark.parametrize('method', ['supervised', 'fixmatch'])
def test_bfloat16_step_stays_within_tolerance_of_float32(method):
  (a0, a1, ma), (b0, b1, mb) = (
    _one_step(tiny_config(method, compute_dtype=d)) for d in ('float32', 'bfloat16')
  )
  # The same float32 master weights from the same key, and float32 everywhere in the state.
  jax.tree.map(np.testing.assert_array_equal, a0['method']['params'], b0['method']['params'])
  assert {x.dtype.name for x in jax.tree.leaves(b1['method'])} <= {'float32', 'int32', 'uint32'}
  for k in ma:
    if k.startswith('loss/'):
      np.testing.assert_allclose(mb[k], ma[k], rtol=1e-3, err_msg=k)
  assert mb['loss/sup'] != ma['loss/sup'], 'the bfloat16 step computed in float32'
  # Stated tolerance: each parameter array the float32 step moves moves within 10 % (L2) of it
  # in bfloat16 (measured: at most 6 %). The biases of convolutions followed by batch norm get
  # no gradient in float32 (batch norm removes their mean) and bfloat16 rounding noise in
  # bfloat16; they do not change the output, so they are left out.
  moved = 0
  for path, x0, x1, y0, y1 in zip(
    *zip(*jax.tree_util.tree_flatten_with_path(a0['method']['params'])[0]),
    jax.tree.leaves(a1['method']['params']),
    jax.tree.leaves(b0['method']['params']),
    jax.tree.leaves(b1['method']['params']),
  ):
    da, db = x1 - x0, y1 - y0
    if np.linalg.norm(da) < 1e-6:
      continue
    moved += 1
    rel = np.linalg.norm(db - da) / np.linalg.norm(da)
    assert rel < 0.1, (jax.tree_util.keystr(path), rel)
  assert moved >= 8


def test_bfloat16_is_for_the_conv_backbones():
  with pytest.raises(UserError, match='conv backbones'):
    helpers.build_small(tiny_config('supervised', backbone='gan_mlp', compute_dtype='bfloat16'))
  with pytest.raises(UserError, match='compute_dtype'):
    helpers.build_small(tiny_config('supervised', compute_dtype='float16'))


@pytest.mark.slow
def test_bfloat16_training_learns_as_float32_does():
  # mnist_ssl's supervised row (100 labels), 300 steps on the small subset: ~9 % test error in
  # float32 (measured: 8.2 %, bfloat16 9.8 %, on 500 test digits).
  errors = {}
  for dtype in ('float32', 'bfloat16'):
    config = mnist_ssl.get_config('supervised,100,300')
    config.compute_dtype = dtype
    run = helpers.build_small(config)
    state, step = run.init(), None
    for batch in run.pipeline.iterate(0, 300):
      step = step or helpers.optimized(run, state, batch)
      state, _ = step(state, batch)
    errors[dtype] = run.evaluate(state)['eval/test/error']
  assert errors['bfloat16'] < 0.2 and errors['bfloat16'] < errors['float32'] + 0.05, errors


def test_peak_flops_table():
  from jaxssl.bench import peak_flops

  assert peak_flops('NVIDIA H100 80GB HBM3', 'bfloat16') == 989.4e12
  assert peak_flops('NVIDIA H100 PCIe', 'float32') == 378e12
  assert peak_flops('NVIDIA H200', 'bfloat16') == 989.4e12
  assert peak_flops('NVIDIA A100-SXM4-40GB', 'float32') == 156e12
  assert peak_flops('NVIDIA L4', 'bfloat16') == 121e12
  assert peak_flops('NVIDIA L40S', 'bfloat16') is None  # not an L4
  assert peak_flops('TPU v5 lite', 'bfloat16') == 197e12
  assert peak_flops('TPU v5p', 'bfloat16') == 459e12
  assert peak_flops('TPU v6 lite', 'float32') == 918e12
  assert peak_flops('cpu', 'float32') is None


def test_bench_counts_flops_and_splits_off_the_backbone(monkeypatch):
  from jaxssl import bench

  result = bench.run_bench(tiny_config('fixmatch'), steps=2, warmup=1)
  # The tiny CNN (8, 16) on 28x28 digits: 2·(28²·9·1·8 + 14²·9·8·16 + 16·10) = 0.565 MFLOP a
  # forward; a training pass adds the weight gradients of both convolutions and the input
  # gradient of the second: ~2.8x. Batch-norm, activations, the loss add a little.
  forward = 2 * (28**2 * 9 * 8 + 14**2 * 9 * 8 * 16 + 16 * 10) * result['batch_views']
  assert 2.0 <= result['backbone_gflops'] * 1e9 / forward <= 4.0, result
  assert result['gflops_per_step'] > result['backbone_gflops']  # + augmentation, loss, EMA
  assert result['achieved_tflops'] > 0 and result['mfu'] is None  # CPU: no peak tabled
  assert result['backbone_ms'] > 0 and 0 < result['backbone_fraction']
  assert result['compute_dtype'] == 'float32'
  assert result['xla_options'] == xla.compiler_options()  # which convolutions ran
  # Several steps a call: FLOPs are one step's (XLA counts a scan's body once, whatever its trip
  # count) and times are per step: with a clock that moves 0.6 s per reading, 200 ms a step.
  clock = iter(np.arange(0, 1e4, 0.6))
  monkeypatch.setattr(bench, 'time', types.SimpleNamespace(perf_counter=lambda: next(clock)))
  scanned = bench.run_bench(tiny_config('fixmatch', steps_per_call=3), steps=2, warmup=1)
  assert scanned['steps_per_call'] == 3 and result['steps_per_call'] == 1
  assert scanned['gflops_per_step'] == result['gflops_per_step']
  assert scanned['step_ms_median'] == pytest.approx(200)


def test_param_count_is_what_a_data_parallel_step_all_reduces():
  from jaxssl.bench import param_count

  run = helpers.build_small(helpers.tiny_config('improved_gan'))
  # D: weight-normed 784-1000-500-250-250-250-10, directions and biases (hidden scales fixed
  # after the data-dependent init, the output's trained). G: 100-500-500 without biases (batch
  # norm's shifts instead), weight-normed 784 output with bias and scale.
  d = (
    784 * 1000
    + 1000 * 500
    + 500 * 250
    + 2 * 250 * 250
    + 250 * 10
    + (1000 + 500 + 3 * 250 + 10)
    + 10
  )
  g = 100 * 500 + 500 * 500 + 500 * 784 + (500 + 500) + (784 + 784)
  assert param_count(jax.eval_shape(run.init)) == d + g


def _analytic_wrn_forward_flops(size=32, channels=3, filters=32, repeat=4) -> int:
  """2·H·W·k²·cin·cout summed over WRN-28-k's convolutions, + its dense head."""
  conv = lambda side, k, cin, cout: 2 * side * side * k * k * cin * cout
  total, cin, side = conv(size, 3, channels, 16), 16, size
  for scale in range(3):
    width, side = filters << scale, side // (2 if scale else 1)
    total += conv(side, 3, cin, width) + conv(side, 3, width, width) + conv(side, 1, cin, width)
    total += (repeat - 1) * 2 * conv(side, 3, width, width)
    cin = width
  return total + 2 * cin * 10


def test_flop_count_matches_wrn_28_2_analytic_count():
  # The bench's FLOPs come from XLA's cost analysis; for WRN-28-2's forward on a 32x32 image
  # the analytic count is 0.43 GFLOP (convolutions), and XLA's must be within 10 % of it.
  import jax.numpy as jnp

  from jaxssl import core
  from jaxssl.bench import flops
  from jaxssl.methods import DataSpec
  from jaxssl.methods import _classifier as C

  config = tiny_config('supervised', backbone='wrn28_2')
  new = lambda key: C.backbone(config, DataSpec((32, 32, 3), 10, 1, 1), key)
  net = C.Net(core.graphdef(new))
  _, params, rest = core.split(new(jax.random.key(0)))
  images = jnp.zeros((8, 32, 32, 3))
  fn = jax.jit(lambda p, r, x: net(p, r, x, train=False)[0])
  per_image = flops(fn.lower(params, rest, images)) / 8
  analytic = _analytic_wrn_forward_flops()
  assert 0.42e9 < analytic < 0.44e9
  # Measured: -8.2 %: XLA does not count the products with a SAME convolution's zero padding,
  # which on the 8x8 maps of the last group are 16 % of a 3x3 kernel's taps.
  assert abs(per_image / analytic - 1) < 0.1, (per_image, analytic)


@pytest.mark.slow  # a fresh interpreter and four compiled steps
def test_bench_all_writes_one_row_per_method_and_dtype(tmp_path):
  import os
  import subprocess
  import sys
  from pathlib import Path

  out = tmp_path / 'bench.md'
  cmd = [sys.executable, 'experiments/bench_all.py', '--suite=mnist', '--steps=1', '--warmup=0',
         '--methods=supervised,improved_gan', f'--out={out}']  # fmt: skip
  root = Path(__file__).parents[1]
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1')  # the GAN's B = 100
  proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [r for r in out.read_text().splitlines() if r.startswith('| ') and 'method' not in r]
  # supervised in float32 and bfloat16; the GAN's MLP in float32 only.
  assert [r.split(' | ')[:2] for r in rows] == [
    ['| supervised', 'float32'], ['| supervised', 'bfloat16'], ['| improved_gan', 'float32']
  ]  # fmt: skip
  assert 'failed' not in out.read_text()


def test_flop_count_is_the_whole_step_on_any_mesh():
  # Counted on the program before partitioning: a step over 8 devices has the FLOPs of the same
  # step on one (a compiled SPMD program's analysis would count one device's share).
  from jaxssl.bench import flops

  counts = []
  for mesh in (helpers.one_device(), parallel.make_mesh()):
    run = helpers.build_small(tiny_config('fixmatch'), mesh)
    batch = parallel.to_device(run.pipeline.host_batch(0), run.mesh)
    counts.append(flops(run.train_step.lower(run.abstract_state, batch)))
  assert len(jax.devices()) == 8 and counts[0] > 0
  assert abs(counts[1] / counts[0] - 1) < 1e-3, counts


def test_flop_count_where_the_backend_does_not_analyse_lowered_programs():
  # CUDA and TPU (PJRT plugins) return None from Lowered.cost_analysis; the bench then asks
  # XLA:CPU to analyse the same program, and must count what the CPU's own analysis counts.
  from jaxssl.bench import flops

  run = helpers.build_small(tiny_config('fixmatch'))
  lowered = run.train_step.lower(
    run.abstract_state, parallel.to_device(run.pipeline.host_batch(0), run.mesh)
  )
  counted = flops(lowered)
  lowered.cost_analysis = lambda: None  # as on a GPU
  assert counted > 0 and flops(lowered) == counted
