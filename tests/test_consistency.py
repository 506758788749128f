"""Properties of the pseudo-labeling and consistency methods, their backbones and optimizer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxssl import core, methods, xla
from jaxssl.config import resolve
from jaxssl.errors import UserError
from jaxssl.methods import DataSpec, fixmatch, flexmatch, mixmatch, uda, vat
from jaxssl.methods import _classifier as C
from jaxssl.models import layers
from jaxssl.models.convnets import WideResNet
from jaxssl.train import build
from tests import helpers
from tests.helpers import tiny_config


def _count(module_fn):
  params = core.split(nnx.eval_shape(module_fn))[1]
  return sum(x.size for x in jax.tree.leaves(params))


def test_wide_resnet_sizes_match_fixmatch():
  # FixMatch reports 1.5M parameters for WRN-28-2 and 23.4M for WRN-28-8 (CIFAR-100).
  assert _count(lambda: WideResNet(3, 10, filters=32, rngs=nnx.Rngs(0))) == 1_469_642
  assert round(_count(lambda: WideResNet(3, 100, filters=128, rngs=nnx.Rngs(0))) / 1e6, 1) == 23.4


def test_flat_normal_draws_the_same_numbers_as_jax_random_normal():
  # Conv kernels are drawn flat (faster to compile); the weights must not change.
  key = jax.random.key(7)
  for shape in [(3, 3, 16, 32), (4, 28, 28, 1), (5, 7)]:
    np.testing.assert_array_equal(layers.normal(key, shape), jax.random.normal(key, shape))


@pytest.mark.parametrize(
  'y',
  [
    jax.random.normal(jax.random.key(1), (3, 8, 8, 4)),
    jnp.zeros((2, 6, 6, 2)),  # every window a four-way tie
    jnp.round(jax.random.normal(jax.random.key(2), (3, 7, 9, 2))),  # odd sizes, many ties
  ],
)
def test_cpu_max_pool_is_the_native_one_bit_for_bit(y):
  # SmallCNN's CPU pooling: the same values, and the gradient to the same element of each window.
  native = lambda y: nnx.max_pool(y, (2, 2), (2, 2))
  out, vjp = jax.vjp(jax.jit(layers.max_pool_2x2), y)
  ref, vjp_ref = jax.vjp(native, y)
  g = jax.random.normal(jax.random.key(3), ref.shape)
  np.testing.assert_array_equal(out, ref)
  np.testing.assert_array_equal(vjp(g)[0], vjp_ref(g)[0])
  hlo = jax.jit(jax.grad(lambda y: layers.max_pool_2x2(y).sum())).lower(y).as_text()
  assert 'select_and_scatter' not in hlo and 'reduce_window' not in hlo  # the CPU path ran


def test_small_cnn_gradient_with_cpu_pooling_is_the_native_one(monkeypatch):
  # Inside a whole compiled step XLA fuses and recomputes the pooled maps differently than in
  # the test above (a first version routed the gradient by comparing with the forward's maximum
  # and was 40 % off here, exact alone).
  from jaxssl.models.convnets import SmallCNN

  graph, params, rest = core.split(
    SmallCNN(1, 10, rngs=nnx.Rngs(0), widths=(16, 32, 64, 64), head='flatten')
  )
  x = jax.random.uniform(jax.random.key(1), (16, 28, 28, 1))

  def grads():  # at XLA:CPU's default level (3), as runs compile (conftest lowers it to 0)
    loss = lambda p: jnp.sum(core.apply(graph, p, rest, x, True, None)[0] ** 2)
    step = jax.jit(jax.grad(loss)).lower(params)
    return step.compile({'xla_backend_optimization_level': 3})(params)

  cpu = grads()
  monkeypatch.setattr(layers, 'max_pool_2x2', lambda y: nnx.max_pool(y, (2, 2), (2, 2)))
  for a, b in zip(jax.tree.leaves(cpu), jax.tree.leaves(grads())):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(b))))


@pytest.fixture
def ynnpack_convolutions(monkeypatch):
  """The regime where layers.Conv chunks: an XLA:CPU that runs jaxssl's convolutions on YNNPACK
  (this jaxlib keeps them off it: jaxssl.xla)."""
  monkeypatch.setattr(xla, 'convolutions_on_ynnpack', lambda: jax.default_backend() == 'cpu')


@pytest.mark.parametrize('stride', [1, 2])
def test_cpu_chunked_conv_is_nnx_conv(stride, monkeypatch, ynnpack_convolutions):
  # 10 images, chunks of at most 4: five chunks of 2 (equal chunks). Each image's output as the
  # one convolution computes it; the weight gradients summed chunk by chunk, equal up to float
  # rounding.
  args = dict(strides=stride, padding='SAME', rngs=nnx.Rngs(0))
  graph, params, _ = core.split(layers.Conv(3, 5, (3, 3), chunk=4, **args))
  plain_graph, _, _ = core.split(nnx.Conv(3, 5, (3, 3), **args))
  x = jax.random.normal(jax.random.key(1), (10, 9, 9, 3))

  def out_and_grads(graph):
    f = lambda p, x: nnx.merge(graph, p)(x)
    loss = lambda p, x: jnp.sum(jnp.sin(f(p, x)))
    return jax.jit(lambda p, x: (f(p, x), jax.grad(loss, (0, 1))(p, x)))(params, x)

  out, grads = out_and_grads(graph)
  ref, ref_grads = out_and_grads(plain_graph)
  np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  hlo = lambda: jax.jit(lambda p, x: nnx.merge(graph, p)(x)).lower(params, x).as_text()
  assert hlo().count('stablehlo.convolution') == 5  # the CPU path ran
  monkeypatch.setattr(jax, 'default_backend', lambda: 'gpu')
  assert hlo().count('stablehlo.convolution') == 1  # GPUs and TPUs: the one convolution


@pytest.mark.parametrize(
  'stride, size, dtype',
  [(1, 3, 'float32'), (2, 3, 'float32'), (2, 1, 'float32'), (1, 3, 'bfloat16')],
)
def test_cpu_weight_gradient_in_chunks_is_nnx_convs(
  stride, size, dtype, monkeypatch, ynnpack_convolutions
):
  # 12 images, weight-gradient chunks of at most 4: three (strided: images j, j+3, ...). The
  # outputs and the input gradient are the one convolution's; the kernel's gradient is summed
  # chunk by chunk, equal up to rounding (bfloat16: to its precision).
  args = dict(strides=stride, padding='SAME', rngs=nnx.Rngs(0), dtype=jnp.dtype(dtype))
  graph, params, _ = core.split(layers.Conv(3, 5, (size, size), grad_chunk=4, **args))
  plain_graph, _, _ = core.split(nnx.Conv(3, 5, (size, size), **args))
  x = jax.random.normal(jax.random.key(1), (12, 9, 10, 3))

  def out_and_grads(graph):
    f = lambda p, x: nnx.merge(graph, p)(x).astype(jnp.float32)
    loss = lambda p, x: jnp.sum(jnp.sin(f(p, x)))
    return jax.jit(lambda p, x: (f(p, x), jax.grad(loss, (0, 1))(p, x)))(params, x)

  (out, grads), (ref, ref_grads) = out_and_grads(graph), out_and_grads(plain_graph)
  np.testing.assert_array_equal(out, ref)
  np.testing.assert_array_equal(grads[1], ref_grads[1])  # the input gradient
  np.testing.assert_array_equal(grads[0]['bias'], ref_grads[0]['bias'])
  kernel, ref_kernel = grads[0]['kernel'], ref_grads[0]['kernel']
  tol = 1e-6 if dtype == 'float32' else 1e-2
  np.testing.assert_allclose(kernel, ref_kernel, atol=tol * float(np.max(np.abs(ref_kernel))))
  assert np.abs(ref_kernel).max() > 1.0  # a gradient, not zeros

  def convs():  # traced afresh: the choice is made when traced, and jit caches traces
    grad = jax.jit(jax.grad(lambda p: jnp.sum(nnx.merge(graph, p)(x))))
    return grad.lower(params).as_text().count('stablehlo.convolution')

  assert convs() == 3  # the CPU path ran: the kernel's gradient in three convolutions
  with monkeypatch.context() as m:
    m.setattr(jax, 'default_backend', lambda: 'gpu')
    assert convs() == 1  # GPUs and TPUs: XLA's gradient


@pytest.mark.parametrize('n, grad_convs', [(32, 4), (64, 8), (128, 16), (224, 16), (960, 15)])
def test_weight_gradient_convolutions_stay_few(n, grad_convs, ynnpack_convolutions):
  # WRN's settings: 64-image forward chunks, 8-image gradient chunks, at most 16 gradient
  # convolutions a layer (224: 16 chunks of 14; 960: 15 forward chunks, each one gradient).
  x = jax.ShapeDtypeStruct((n, 4, 4, 2), jnp.float32)
  graph, params, _ = core.split(
    layers.Conv(2, 2, (3, 3), chunk=64 if n != 224 else None, grad_chunk=8, rngs=nnx.Rngs(0))
  )
  grad = jax.jit(jax.grad(lambda p, x: jnp.sum(nnx.merge(graph, p)(x))))
  assert grad.lower(params, x).as_text().count('stablehlo.convolution') == grad_convs


@pytest.mark.parametrize(
  'n, chunks', [(64, 1), (66, 2), (128, 2), (960, 15), (448, 7), (130, 1), (67, 1)]
)
def test_chunks_are_equal_and_at_most_the_chunk(n, chunks):
  # 130 = 5 x 26 and 67 (prime) would need chunks under half the size: one convolution.
  assert layers._chunk_count(n, 64) == chunks


def test_chunked_conv_keeps_a_sharded_batch_on_its_devices(ynnpack_convolutions):
  # A batch sharded over devices in contiguous blocks: every chunk takes its images from every
  # block, so the compiled convolution moves no images between devices (contiguous chunks did:
  # ~90 collective permutes a convolution at 960 images on 8 devices).
  from jaxssl import parallel

  graph, params, _ = core.split(layers.Conv(4, 4, (3, 3), chunk=8, rngs=nnx.Rngs(0)))
  x = jax.device_put(jnp.ones((64, 6, 6, 4)), parallel.batch_sharding(parallel.make_mesh()))
  lowered = jax.jit(lambda p, x: nnx.merge(graph, p)(x)).lower(params, x)
  assert lowered.as_text().count('stablehlo.convolution') == 8  # 8 chunks of 8 images
  hlo = lowered.compile().as_text()
  for op in ('all-to-all', 'collective-permute', 'all-gather'):
    assert op not in hlo, op


def test_chunked_weight_gradient_over_a_sharded_batch_is_one_collective(ynnpack_convolutions):
  # Each chunk's partial kernel gradient sums over a batch split across 8 devices, so each needs
  # an all-reduce; XLA combines them (and the bias's) into one collective, as for one gradient.
  from jaxssl import parallel

  x = jax.device_put(jnp.ones((64, 6, 6, 4)), parallel.batch_sharding(parallel.make_mesh()))

  def all_reduces(grad_chunk):
    conv = layers.Conv(4, 4, (3, 3), grad_chunk=grad_chunk, rngs=nnx.Rngs(0))
    graph, params, _ = core.split(conv)
    grad = jax.jit(jax.grad(lambda p, x: jnp.sum(nnx.merge(graph, p)(x) ** 2)))
    lowered = grad.lower(params, x)
    hlo = lowered.compile().as_text()
    ops = [
      line for line in hlo.splitlines() if ' all-reduce(' in line or 'all-reduce-start(' in line
    ]
    return len(ops), lowered.as_text().count('stablehlo.convolution')

  assert all_reduces(None) == (1, 2)  # the forward and the kernel gradient
  assert all_reduces(8) == (1, 9)  # the forward, 8 gradient chunks: one collective


def test_wide_resnet_training_pass_with_cpu_chunks_is_the_plain_one(ynnpack_convolutions):
  # 18 images in chunks of at most 16 (two of 9) in every convolution, batch norm over all 18
  # between them, and each chunk's weight gradient summed over chunks of at most 4 (three of 3):
  # the structure of the defaults (64, 8) at a batch small enough for float64. In float64: in
  # float32 at the suite's -O0 the naive sums over the positions differ by ~1e-3 between any two
  # orders, hiding a real difference (float64: ~1e-15).
  def pass_(cpu_chunk, cpu_grad_chunk):
    with jax.enable_x64(True):
      chunks = dict(cpu_chunk=cpu_chunk, cpu_grad_chunk=cpu_grad_chunk)
      net = WideResNet(3, 10, filters=8, rngs=nnx.Rngs(0), **chunks)
      graph, params, rest = core.split(net)
      params, rest = jax.tree.map(lambda a: a.astype(jnp.float64), (params, rest))
      x = jax.random.uniform(jax.random.key(0), (18, 16, 16, 3), jnp.float64)
      loss = lambda p: jnp.sum(core.apply(graph, p, rest, x, True)[0] ** 2)
      lowered = jax.jit(jax.value_and_grad(loss)).lower(params)
      return lowered.compile()(params), lowered.as_text().count('stablehlo.convolution')

  (loss, grads), convs = pass_(16, 4)
  (ref_loss, ref_grads), ref_convs = pass_(None, None)
  # Two image chunks alone would double every convolution; more means the gradient chunks ran.
  assert convs > 2 * ref_convs, (convs, ref_convs)
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
  # Against the largest gradient: the convolutions' biases, which batch norm cancels, have
  # gradients that are rounding noise around 0 in both.
  scale = max(float(np.max(np.abs(b))) for b in jax.tree.leaves(ref_grads))
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12 * scale)


def _convs_on_ynnpack(compiled_text: str) -> int:
  # A YNNPACK fusion's line names its kind in backend_config, its op in metadata.
  lines = compiled_text.split('\n')
  return sum('"__ynn_fusion"' in line and 'conv_general_dilated' in line for line in lines)


def test_cpu_programs_keep_convolutions_on_xla_threads():
  # jax 0.10's XLA:CPU hands convolutions to YNNPACK (one thread each); xla.jit compiles them as
  # XLA's own threaded convolutions, and layers.Conv then convolves the batch at once.
  options = xla.compiler_options()
  if jax.__version_info__[:2] == (0, 10):  # the XLA whose options were measured
    assert options is not None
  assert xla.convolutions_on_ynnpack() == (options is None)
  net = WideResNet(3, 10, filters=8, rngs=nnx.Rngs(0))
  graph, params, rest = core.split(net)
  x = jax.random.uniform(jax.random.key(0), (66, 16, 16, 3))

  def pass_(jit):
    def loss(p):
      logits = core.apply(graph, p, rest, x, True)[0]
      return jnp.sum(jnp.sin(logits)), logits

    lowered = jit(jax.value_and_grad(loss, has_aux=True)).lower(params)
    compiled = lowered.compile()
    convs = lowered.as_text().count('stablehlo.convolution')
    return compiled(params), convs, _convs_on_ynnpack(compiled.as_text())

  ((loss, logits), grads), convs, on_ynn = pass_(xla.jit)
  ((ref_loss, ref_logits), ref_grads), ref_convs, ref_on_ynn = pass_(jax.jit)
  # 28 convolutions: forward, kernel and input gradients (none for the stem's input); no chunks.
  assert convs == ref_convs == 3 * 28 - 1
  assert ref_on_ynn > 0 and on_ynn == (ref_on_ynn if options is None else 0)
  # Another convolution's float rounding, nothing more. The loss sums 660 terms of both signs to
  # ~1, so its rounding is absolute (1.0e-5 on an AMD EPYC VM), not relative to the sum.
  np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-5 * np.max(np.abs(ref_logits)))
  np.testing.assert_allclose(loss, ref_loss, rtol=0, atol=1e-4)
  scale = max(float(np.max(np.abs(b))) for b in jax.tree.leaves(ref_grads))
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5 * scale)


def test_cpu_options_leave_programs_without_convolutions_as_they_were():
  # The Improved-GAN, Ladder and VAE steps are dots and reductions: compiled alike with and
  # without xla.jit's options (their results, e.g. the default run's 544 errors, cannot move).
  from jaxssl.models.mlp import Discriminator

  graph, params, rest = core.split(Discriminator(784, 10, rngs=nnx.Rngs(0)))
  x = jnp.ones((100, 784))
  logits = lambda p: core.apply(graph, p, rest, x, jax.random.key(1))[0][0]
  loss = lambda p: jnp.sum(jax.nn.logsumexp(logits(p), -1))
  compiled = lambda options: jax.jit(jax.grad(loss), compiler_options=options).lower(params)
  text = lambda options: xla.instructions(compiled(options).compile().as_text())
  assert xla.compiler_options() is None or text(xla.compiler_options()) == text(None)


def test_wide_resnet_runs_on_cifar_shapes_and_updates_batch_norm():
  net = WideResNet(3, 10, filters=8, rngs=nnx.Rngs(0))
  graph, params, rest = core.split(net)
  x = jax.random.uniform(jax.random.key(0), (4, 32, 32, 3))
  logits, new_rest = core.apply(graph, params, rest, x, True)
  assert logits.shape == (4, 10)
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), rest, new_rest)
  assert all(jax.tree.leaves(changed))
  eval_logits, same_rest = core.apply(graph, params, rest, x, False)
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


def test_bad_choice_is_a_user_error_before_the_data_loads(monkeypatch):
  from jaxssl.data import datasets

  def load(*args):
    raise AssertionError('the dataset was loaded before the config was checked')

  monkeypatch.setattr(datasets, 'load', load)
  with pytest.raises(UserError, match="'backbone' must be one of"):
    build(tiny_config('fixmatch', backbone='resnet9000'))


@pytest.mark.xdist_group('fixmatch')  # shares fixmatch's steps with the other tests of it
def test_fixmatch_without_confident_labels_learns_from_labels_only():
  # τ > 1: no pseudo-label is ever kept, so the update is the one without the unlabeled loss.
  # τ and λu are inputs of the one compiled step (Method.hparams).
  run, kept, metrics = helpers.first_steps('fixmatch')
  _, never, never_metrics = helpers.run_steps(run.with_hparams(threshold=1.01), 1)
  _, without_u, _ = helpers.run_steps(run.with_hparams(lambda_u=0.0), 1)
  assert never_metrics[0]['monitor/mask_rate'] == 0 and never_metrics[0]['loss/unsup'] == 0
  jax.tree.map(np.testing.assert_array_equal, never[0]['method'], without_u[0]['method'])
  # And the comparison can fail: with τ = 0 (tiny_config) every pseudo-label counts.
  assert metrics[0]['monitor/mask_rate'] == 1 and metrics[0]['loss/unsup'] > 0
  assert not np.array_equal(
    kept[0]['method']['params']['head']['kernel'],
    without_u[0]['method']['params']['head']['kernel'],
  )


THRESHOLDED = ['pseudo_label', 'uda', 'fixmatch', 'flexmatch', 'adamatch', 'simmatch']


@pytest.mark.parametrize('case', THRESHOLDED)
def test_confidence_threshold_is_an_input_of_the_step(case):
  # tiny_config sets τ = 0, so pseudo-labels count from step 0; the same compiled step given a τ
  # no confidence reaches (AdaMatch's is relative to the labeled confidence) keeps none.
  run, states, metrics = helpers.first_steps(case)
  assert 'threshold' in run.method.hparams and run.config.threshold == 0.0
  _, never_states, never = helpers.run_steps(run.with_hparams(threshold=1e6), 1)
  assert run.train_step._cache_size() == 1, 'one compiled step for both values'
  if case == 'flexmatch':
    # Its class thresholds warm up from 0, so τ first decides which labels it remembers.
    assert (states[0]['method']['selected'] >= 0).any()
    assert (never_states[0]['method']['selected'] < 0).all()
    return
  assert metrics[0]['monitor/mask_rate'] > 0 and metrics[0]['loss/unsup'] > 0, metrics[0]
  assert never[0]['monitor/mask_rate'] == 0 and never[0]['loss/unsup'] == 0, never[0]


SSL_METHODS = [
  m for m in methods.available() if 'lambda_u' in methods.get(m).defaults() and m != 'supervised'
]


@pytest.mark.parametrize('case', SSL_METHODS)
def test_unlabeled_term_changes_the_update(case):
  # tiny_config makes the unlabeled term count from step 0 (helpers.ACTIVE_FROM_STEP_0), so one
  # step with λu = 0 and one with the method's λu must differ. A method whose unlabeled loss has
  # no gradient (USB's Mean Teacher takes the student's logits from the no-grad teacher) fails.
  assert case in helpers.ACTIVE_FROM_STEP_0, 'say how its unlabeled term is on from step 0'
  lambda_u = methods.get(case).defaults()['lambda_u']
  assert lambda_u > 0
  run, with_u, metrics = helpers.first_steps(case)
  # λu is an input of the compiled step (Method.hparams): the same program, given λu = 0.
  _, without_u, _ = helpers.run_steps(run.with_hparams(lambda_u=0.0), 1)
  assert metrics[0]['loss/unsup'] > 0, metrics[0]
  # The classifier's kernel (SimMatch's, ReMixMatch's backbones sit under their extra heads).
  kernel = lambda p: (p['backbone'] if 'backbone' in p else p)['head']['kernel']
  a = kernel(with_u[0]['method']['params'])
  b = kernel(without_u[0]['method']['params'])
  # Without a gradient from the unlabeled loss the two updates would be bit-identical.
  assert np.abs(a - b).max() > 1e-6, 'the unlabeled loss must move the weights'


@pytest.mark.xdist_group('mean_teacher')
def test_mean_teacher_teacher_is_the_ema_of_the_student():
  run, states, _ = helpers.first_steps('mean_teacher')
  init = jax.device_get(run.init())['method']
  teacher = init['avg']
  for step, state in enumerate(states):  # decays 0, 1/2, 2/3: the warm-up of ema_decay
    decay = min(run.config.ema_decay, 1 - 1 / (step + 1))
    student = state['method']['params']
    teacher = jax.tree.map(lambda t, s, d=decay: d * t + (1 - d) * s, teacher, student)
    jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
      teacher,
      state['method']['avg'],
    )


@pytest.mark.xdist_group('flexmatch')
def test_flexmatch_remembers_confident_labels_per_example():
  # τ at the median confidence of the first weak view: where it is confident, the stored label is
  # the prediction; the others are marked drawn-but-unconfident; undrawn examples stay unmarked.
  run, _, _ = helpers.first_steps('flexmatch')
  batch = run.pipeline.host_batch(0)
  probs = _weak_probs(run, run.init()['method'], batch)
  conf, pred = probs.max(-1), probs.argmax(-1)
  tau = float(np.median(conf))
  _, states, _ = helpers.run_steps(run.with_hparams(threshold=tau), 1)  # τ: a step input
  selected = states[0]['method']['selected']
  stored = selected[batch['i_u']]
  np.testing.assert_array_equal(stored[conf >= tau], pred[conf >= tau])
  assert np.all(stored[conf < tau] == flexmatch.UNCONFIDENT) and (conf < tau).any()
  untouched = np.setdiff1d(np.arange(len(selected)), batch['i_u'])
  assert np.all(selected[untouched] == flexmatch.NEVER_DRAWN)


def _weak_probs(run, method_state, batch):
  """Softmax of the weak view exactly as FlexMatch's first step computes it."""
  config = run.config
  key = jax.random.fold_in(jax.random.wrap_key_data(run.init()['rng']), 0)
  net = C.Net(core.split(nnx.eval_shape(lambda: C.backbone(config, _spec(run), key)))[0])
  batch = jax.tree.map(jnp.asarray, batch)

  @jax.jit
  def probs(method_state, batch):
    views = fixmatch.views(config, method_state, batch, key)
    (_, logits_w, _), _ = C.forward_all(net, method_state['params'], method_state, views)
    return jax.nn.softmax(logits_w)

  return np.asarray(probs(method_state, batch))


def _spec(run):
  ds = run.dataset
  return DataSpec(ds.image_shape, ds.num_classes, ds.num_unlabeled, 10)


def test_flexmatch_class_thresholds():
  tau, n = 0.95, 100
  never = np.full(n, flexmatch.NEVER_DRAWN, np.int32)
  for warmup in flexmatch.WARMUPS:
    np.testing.assert_array_equal(flexmatch.class_thresholds(never, 10, tau, warmup), 0.0)
  all_three = np.full(n, 3, np.int32)
  t = flexmatch.class_thresholds(all_three, 10, tau, 'pool')
  np.testing.assert_allclose(t[3], tau)  # β = 1 and M(1) = 1
  np.testing.assert_array_equal(np.delete(t, 3), 0.0)
  # 20 of class 0, 30 drawn but unconfident, 50 never drawn.
  mixed = np.full(n, flexmatch.NEVER_DRAWN, np.int32)
  mixed[:20], mixed[20:50] = 0, flexmatch.UNCONFIDENT
  m = lambda beta: tau * beta / (2 - beta)
  # pool (TorchSSL/USB): the 80 unused examples dominate, β(0) = 20/80.
  np.testing.assert_allclose(flexmatch.class_thresholds(mixed, 10, tau, 'pool')[0], m(20 / 80))
  # seen: only the 30 drawn examples count as unused, β(0) = 20/30.
  np.testing.assert_allclose(flexmatch.class_thresholds(mixed, 10, tau, 'seen')[0], m(20 / 30))
  np.testing.assert_allclose(flexmatch.class_thresholds(mixed, 10, tau, 'off')[0], tau)
  # Once every example has been drawn, seen and pool agree.
  drawn = np.where(mixed == flexmatch.NEVER_DRAWN, flexmatch.UNCONFIDENT, mixed)
  np.testing.assert_array_equal(
    flexmatch.class_thresholds(drawn, 10, tau, 'seen'),
    flexmatch.class_thresholds(drawn, 10, tau, 'pool'),
  )


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
  for xi in (1e-6, 0.0):  # finite difference and exact Hessian-vector product
    r = vat.adversarial_perturbation(
      logits_fn, x, logits_fn(x), jax.random.key(2), xi=xi, eps=2.0, iterations=1
    )
    np.testing.assert_allclose(jnp.sqrt(jnp.sum(r**2, (1, 2, 3))), 2.0, rtol=1e-5)
    random = 2.0 * vat._unit(jax.random.normal(jax.random.key(3), x.shape))
    kl = lambda d: vat.kl_divergence(logits_fn(x), logits_fn(x + d))
    assert np.all(kl(r) > kl(random))


def test_vat_on_a_batch_norm_network(mnist):
  # The objective's own passes: the divergence is exactly 0 at r = 0 (same batch statistics for
  # the clean and the perturbed images) and the adversarial direction beats random ones.
  config = resolve(tiny_config('vat', eps=2.0))
  spec = DataSpec(mnist.image_shape, 10, mnist.num_unlabeled, 10)
  module = C.backbone(config, spec, jax.random.key(0))
  graph, params, rest = core.split(module)
  net = C.Net(graph)
  u = mnist.train_images[:64].astype(np.float32) / 255
  unlabeled = lambda x: net(params, rest, x, train=True)[0]
  clean = unlabeled(u)
  np.testing.assert_allclose(vat.kl_divergence(clean, unlabeled(u + 0.0)), 0.0, atol=1e-6)
  r = vat.adversarial_perturbation(
    unlabeled, u, clean, jax.random.key(1), xi=config.xi, eps=2.0, iterations=1
  )
  adversarial = vat.kl_divergence(clean, unlabeled(u + r))
  for seed in range(3):
    random = 2.0 * vat._unit(jax.random.normal(jax.random.key(10 + seed), u.shape))
    assert np.mean(adversarial > vat.kl_divergence(clean, unlabeled(u + random))) > 0.9


def test_uda_training_signal_annealing():
  assert float(uda.tsa_threshold('none', 0, 100, 10)) == 1.0
  np.testing.assert_allclose(uda.tsa_threshold('linear', 0, 100, 10), 0.1)
  np.testing.assert_allclose(uda.tsa_threshold('linear', 100, 100, 10), 1.0)
  np.testing.assert_allclose(uda.tsa_threshold('exp', 100, 100, 10), 1.0)
  np.testing.assert_allclose(uda.tsa_threshold('log', 0, 100, 10), 0.1)


def test_ramps_are_in_steps():
  assert float(C.ramp(0, 40)) == 0.0 and float(C.ramp(20, 40)) == 0.5
  assert float(C.ramp(40, 40)) == 1.0 and float(C.ramp(10**6, 40)) == 1.0
  np.testing.assert_allclose(C.ramp(0, 40, 'sigmoid'), np.exp(-5.0))
  assert float(C.ramp(0, 0)) == 1.0


def _train_on_digit_subset(method: str, steps: int) -> float:
  """Test error after `steps` steps with 40 labels, 3,000 unlabeled digits, a tiny CNN."""
  config = tiny_config(
    method,
    active=False,
    num_steps=steps,
    labels_per_class=4,
    batch_size=16,
    uratio=4,
    cnn_widths=(8, 16, 32),
    cnn_head='flatten',
    bn_momentum=0.9,
    ema_decay=0.9,
  )
  return helpers.error_after_training(config, steps, helpers.small(3000, 1000))


def test_fixmatch_learns_from_unlabeled_digits():
  # Same network, steps and labeled split; FixMatch also sees the unlabeled pool. Measured on
  # these 1,000 test digits after 200 steps, seeds 0/1/2: supervised 23.9/25.7/22.3 %, FixMatch
  # 16.7/14.9/14.2 % (at 300 steps, seeds 0/1/2: 20.7/25.1/21.5 against 12.8/9.9/10.9 %).
  supervised = _train_on_digit_subset('supervised', 200)
  fixmatch_error = _train_on_digit_subset('fixmatch', 200)
  assert fixmatch_error < supervised - 0.04, (fixmatch_error, supervised)


def test_batch_norm_is_nnx_batch_norm_and_its_update_never_probes_a_tracer(monkeypatch):
  # nnx probes `tracer.sharding` on each statistics update and JAX builds that AttributeError's
  # message from the whole trace so far (layers.Statistic): tracing went quadratic in depth.
  probes = []

  def sharding(tracer):
    probes.append(1)
    raise AttributeError('sharding')

  monkeypatch.setattr(jax.core.Tracer, 'sharding', property(sharding))
  x = jax.random.normal(jax.random.key(0), (8, 5)) * 3 + 1

  def train(cls):
    graph, params, rest = core.split(cls(5, momentum=0.9, rngs=nnx.Rngs(0)))
    return jax.jit(lambda p, r: core.apply(graph, p, r, x, use_running_average=False))(params, rest)

  (ours, ours_rest), n_ours = train(layers.BatchNorm), len(probes)
  (ref, ref_rest), n_ref = train(nnx.BatchNorm), len(probes) - n_ours
  assert n_ours == 0 and n_ref > 0  # and the probe is seen where nnx makes it
  np.testing.assert_array_equal(ours, ref)
  for a, b in zip(jax.tree.leaves(ours_rest), jax.tree.leaves(ref_rest), strict=True):
    np.testing.assert_array_equal(a, b)
  assert float(jnp.abs(ours_rest['mean'][...]).sum()) > 0  # the statistics did move
