"""Improved-GAN losses against direct K+1-class reference formulas; the model as the paper's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxssl.errors import UserError
from jaxssl.methods.improved_gan import discriminator_losses, feature_matching_loss
from jaxssl.models.mlp import Discriminator, Generator
from tests import helpers


def _softmax(z):
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def test_k_plus_one_losses_match_the_explicit_k_plus_one_softmax():
  rng = np.random.default_rng(0)
  l_lab, l_unl, l_fake = (rng.normal(size=(n, 4)) * 3 for n in (5, 6, 7))
  y = rng.integers(0, 4, size=5)
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  sup, unsup = discriminator_losses(f32(l_lab), jnp.asarray(y), f32(l_unl), f32(l_fake))
  # The K+1 classifier written out: a fifth class "fake" with logit 0.
  kp1 = lambda z: _softmax(np.concatenate([z, np.zeros((len(z), 1))], 1))
  p_lab = kp1(l_lab)
  ref_sup = -np.mean(np.log(p_lab[np.arange(5), y] / (1 - p_lab[:, -1])))
  ref_unsup = 0.5 * (-np.mean(np.log(1 - kp1(l_unl)[:, -1])) - np.mean(np.log(kp1(l_fake)[:, -1])))
  np.testing.assert_allclose(sup, ref_sup, rtol=1e-5)
  np.testing.assert_allclose(unsup, ref_unsup, rtol=1e-5)


def test_feature_matching_loss():
  real, fake = jnp.ones((4, 3)), jnp.zeros((5, 3)) + jnp.array([0.0, 1.0, 3.0])
  np.testing.assert_allclose(feature_matching_loss(real, fake), (1 + 0 + 4) / 3)


@pytest.mark.parametrize(
  'init, std', [('glorot_uniform', (6 / (500 + 784)) ** 0.5 / 3**0.5), ('normal', 0.1)]
)
def test_generator_output_directions_start_as_configured(init, std):
  # Lasagne's GlorotUniform (the paper's G output) is U(±sqrt(6 / (fan_in + fan_out))).
  g = Generator((28, 28, 1), rngs=nnx.Rngs(0), out_init=init)
  v = np.asarray(g.out.v[...])
  assert v.shape == (500, 784)
  np.testing.assert_allclose(v.std(), std, rtol=0.01)
  bound = (6 / (500 + 784)) ** 0.5
  assert (np.abs(v).max() <= bound) == (init == 'glorot_uniform')


def test_discriminator_shape_params_and_data_init():
  d = Discriminator(784, 10, rngs=nnx.Rngs(0))
  params = nnx.state(d, nnx.Param)
  # Trainable: every v and b, and only the output layer's scale g (the paper fixes the others).
  n = sum(x.size for x in jax.tree.leaves(params))
  dims = [784, 1000, 500, 250, 250, 250, 10]
  assert n == sum(a * b + b for a, b in zip(dims[:-1], dims[1:])) + 10
  x = jax.random.uniform(jax.random.key(1), (500, 28, 28, 1))
  d.data_init(x)
  h = x.reshape(500, -1)
  for layer in d.hidden:
    pre = layer(h)
    np.testing.assert_allclose(pre.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(pre.std(0), 1, atol=1e-3)
    h = jax.nn.relu(pre)
  logits, feats = d(x[:8])  # deterministic
  assert logits.shape == (8, 10) and feats.shape == (8, 250)
  a, _ = d(x[:8], jax.random.key(2))
  b, _ = d(x[:8], jax.random.key(3))
  assert not np.allclose(a, b)  # noise is on in training mode


def test_minimax_ablation_trains_the_generator():
  after = {}
  for loss in ('minimax', 'feature_matching'):
    run = helpers.build_small(helpers.tiny_config('improved_gan', generator_loss=loss))
    state = run.init()
    state, metrics = run.train_step(state, next(run.pipeline.iterate(0, 1)))
    assert all(np.isfinite(v) for v in jax.device_get(metrics).values())
    after[loss] = jax.device_get(state['method'])
  # D is updated first, by the same loss (equal to float rounding: two programs XLA may fuse
  # apart); G's update is where the two generator losses differ.
  same = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  jax.tree.map(same, after['minimax']['d'], after['feature_matching']['d'])
  g = [after[loss]['g'] for loss in ('minimax', 'feature_matching')]
  assert any(not np.allclose(a, b) for a, b in zip(*map(jax.tree.leaves, g)))


def test_separate_generator_batch_feeds_feature_matching_the_second_half():
  # The paper code trains D on trainx_unl and matches G's features on trainx_unl2: with
  # generator_batch=separate, D's step sees only the first half of the unlabeled batch (so it
  # equals the shared step on that half) and G's step sees only the second.
  sep = helpers.build_small(
    helpers.tiny_config('improved_gan', generator_batch='separate', uratio=2)
  )
  shared = helpers.build_small(helpers.tiny_config('improved_gan'))
  batch = jax.device_get(next(sep.pipeline.iterate(0, 1)))
  half = len(batch['x_u']) // 2
  first = dict(batch, x_u=batch['x_u'][:half], y_u=batch['y_u'][:half])
  swapped = dict(batch, x_u=np.concatenate([batch['x_u'][:half], batch['x_u'][:half]]))
  out = {  # init() per step: train_step donates its state
    name: jax.device_get(run.train_step(sep.init(), b)[0]['method'])
    for name, run, b in [('sep', sep, batch), ('shared', shared, first), ('sep_aa', sep, swapped)]
  }
  eq = lambda a, b: jax.tree.map(np.testing.assert_array_equal, a, b)
  eq(out['sep']['d'], out['shared']['d'])
  eq(out['sep_aa']['g'], out['shared']['g'])  # matching on the first half = the shared step
  g = [jax.tree.leaves(out[k]['g']) for k in ('sep', 'shared')]
  assert any(not np.array_equal(a, b) for a, b in zip(*g))


def test_separate_generator_batch_needs_an_even_uratio():
  with pytest.raises(UserError, match='uratio must be even'):
    helpers.build_small(helpers.tiny_config('improved_gan', generator_batch='separate'))


def test_unknown_generator_init_is_a_user_error():
  with pytest.raises(UserError, match='gen_output_init must be'):
    helpers.build_small(helpers.tiny_config('improved_gan', gen_output_init='xavier'))
