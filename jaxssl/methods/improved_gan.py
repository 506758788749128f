"""Improved-GAN semi-supervised learning (Salimans et al. 2016, arXiv 1606.03498).

K+1-class discriminator written with K logits (the fake class has logit 0), a generator trained by
feature matching (or, as an ablation, the non-saturating minimax loss), two Adam optimizers updated
in one step (D first, then G against the updated D, as the paper's code), Polyak-averaged D for
evaluation.
"""

import math

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxssl import core
from jaxssl.data import to_float
from jaxssl.errors import UserError
from jaxssl.methods import DataSpec, Method
from jaxssl.models.mlp import OUTPUT_INITS, Discriminator, Generator


def defaults() -> dict:
  return dict(
    lr=0.003,
    adam_b1=0.5,
    adam_b2=0.999,
    lr_decay_fraction=0.0,  # final fraction of num_steps with lr decayed linearly to 0
    unsup_weight=1.0,
    generator_loss='feature_matching',  # or 'minimax' (non-saturating -log D(real|G(z)))
    z_dim=100,
    gen_widths=(500, 500),
    # G's output-layer directions: 'glorot_uniform' (the paper code's) or 'normal', N(0, 0.1²):
    # ~2.5x larger entries, which Adam (steps of ~lr per entry) rotates ~2.5x more slowly.
    gen_output_init='glorot_uniform',
    disc_widths=(1000, 500, 250, 250, 250),
    input_noise=0.3,
    hidden_noise=0.5,
    polyak_decay=0.9999,  # the paper's a <- a + 1e-4 (p - a), bias-corrected
    data_init=True,  # data-dependent init of D on init_examples images, as the paper code
    # 'separate': the paper code's trainx_unl2. The unlabeled batch (uratio 2) is split: D's
    # real/fake game sees the first half, feature matching the second. 'shared': both see one
    # batch (uratio 1), half the unlabeled data per step.
    generator_batch='shared',
  )


def adam(config) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The paper code's Adam, g / sqrt(v_hat + 1e-8), and its learning-rate schedule."""
  return core.adam(config, eps=0.0, eps_root=1e-8)


def discriminator(config, data: DataSpec, key: jax.Array) -> Discriminator:
  """The paper's MNIST discriminator, sized for `data`. The labeled-only baseline
  (backbone='gan_mlp') builds the same Discriminator at its default widths and noise, which are
  the paper's: a GAN run with other disc_widths has no baseline of its shape."""
  return Discriminator(
    math.prod(data.image_shape),
    data.num_classes,
    rngs=nnx.Rngs(key),
    widths=config.disc_widths,
    input_noise=config.input_noise,
    hidden_noise=config.hidden_noise,
  )


def discriminator_losses(l_lab, y_lab, l_unl, l_fake):
  """(supervised, unsupervised) K+1-class losses with the fake class's logit fixed at 0.

  D(x) = Z/(Z+1), Z = sum exp(logits): -log D(x_u) = -lse + softplus(lse), -log(1 - D(G(z))) =
  softplus(lse). The 0.5 weighting is the paper code's.
  """
  sup = optax.softmax_cross_entropy_with_integer_labels(l_lab, y_lab).mean()
  lse_u, lse_f = jax.nn.logsumexp(l_unl, -1), jax.nn.logsumexp(l_fake, -1)
  unsup = 0.5 * (-lse_u.mean() + jax.nn.softplus(lse_u).mean() + jax.nn.softplus(lse_f).mean())
  return sup, unsup


def feature_matching_loss(f_real, f_fake):
  """Mean squared distance between the batch means of real and generated features."""
  return jnp.mean(jnp.square(f_fake.mean(0) - f_real.mean(0)))


def make(config, data: DataSpec) -> Method:
  if config.generator_loss not in ('feature_matching', 'minimax'):
    raise UserError(
      f'generator_loss must be feature_matching or minimax, got {config.generator_loss!r}'
    )
  if config.gen_output_init not in OUTPUT_INITS:
    raise UserError(
      f'gen_output_init must be one of {", ".join(OUTPUT_INITS)}, got {config.gen_output_init!r}'
    )
  if config.generator_batch not in ('shared', 'separate'):
    raise UserError(f'generator_batch must be shared or separate, got {config.generator_batch!r}')
  if config.generator_batch == 'separate' and config.uratio % 2:
    raise UserError(
      f'generator_batch=separate splits the unlabeled batch in two halves: uratio must be even, '
      f'got {config.uratio}'
    )
  new_d = lambda key: discriminator(config, data, key)
  new_g = lambda key: Generator(
    data.image_shape,
    rngs=nnx.Rngs(key),
    z_dim=config.z_dim,
    widths=config.gen_widths,
    out_init=config.gen_output_init,
  )
  graph_d, graph_g = core.graphdef(new_d), core.graphdef(new_g)
  tx, lr = adam(config)

  def init(key, init_images):
    kd, kg, k_init = jax.random.split(key, 3)
    d = new_d(kd)
    if config.data_init:
      d.data_init(to_float(init_images), k_init)
    return dict(d=core.model(d, tx, average='polyak'), g=core.model(new_g(kg), tx))

  def disc(d, params, x, key):
    return core.apply(graph_d, params, d['rest'], x, key)[0]

  def generate(g, params, key, n):
    z = jax.random.uniform(key, (n, config.z_dim), jnp.float32)
    return core.apply(graph_g, params, g['rest'], z)

  def train_step(state, batch, key, step, hp):
    x_l, y_l, x_u = to_float(batch['x_l']), batch['y_l'], to_float(batch['x_u'])
    x_u, x_match = jnp.split(x_u, 2) if config.generator_batch == 'separate' else (x_u, x_u)
    n_l, n_u = x_l.shape[0], x_u.shape[0]
    k_z1, k_z2, k_d, k_g = jax.random.split(key, 4)
    d, g = state['d'], state['g']
    x_fake, g_rest = generate(g, g['params'], k_z1, n_u)
    g = dict(g, rest=g_rest)

    def d_loss(params):
      # One forward over labeled, unlabeled and fake: D has no batch statistics, so this equals
      # three passes, with one large matmul instead of three.
      x = jnp.concatenate([x_l, x_u, jax.lax.stop_gradient(x_fake)])
      logits_l, logits_u, logits_f = jnp.split(disc(d, params, x, k_d)[0], [n_l, n_l + n_u])
      sup, unsup = discriminator_losses(logits_l, y_l, logits_u, logits_f)
      return sup + config.unsup_weight * unsup, (
        d['rest'],
        (sup, unsup, logits_l, logits_u, logits_f),
      )

    d, loss_d, (sup, unsup, logits_l, logits_u, logits_f) = core.update(
      d, tx, d_loss, step, config.polyak_decay
    )

    def g_loss(params):  # against the updated D
      x_g, rest = generate(g, params, k_z2, n_u)
      if config.generator_loss == 'minimax':
        logits = disc(d, d['params'], x_g, k_g)[0]
        return jax.nn.softplus(-jax.nn.logsumexp(logits, -1)).mean(), (rest, None)
      _, feats = disc(d, d['params'], jnp.concatenate([x_match, x_g]), k_g)
      f_real, f_fake = jnp.split(feats, [n_u])
      return feature_matching_loss(jax.lax.stop_gradient(f_real), f_fake), (rest, None)

    g, loss_g, _ = core.update(g, tx, g_loss)
    lse_u, lse_f = jax.nn.logsumexp(logits_u, -1), jax.nn.logsumexp(logits_f, -1)
    metrics = {
      'loss/d': loss_d,
      'loss/sup': sup,
      'loss/unsup': unsup,
      'loss/g': loss_g,
      **core.monitors(dict(batch, y_u=batch['y_u'][:n_u]), logits_l, logits_u, lr=lr, step=step),
      'monitor/d_real': jnp.mean(jax.nn.sigmoid(lse_u)),
      'monitor/d_fake': jnp.mean(jax.nn.sigmoid(lse_f)),
    }
    return dict(state, d=d, g=g), metrics

  def predict(state, x):
    d = state['d']
    return disc(d, core.averaged(d, config.polyak_decay), to_float(x), None)[0]

  return Method(
    init=init,
    train_step=train_step,
    predict=predict,
    extra_predictors={
      'raw': lambda state, x: disc(state['d'], state['d']['params'], to_float(x), None)[0]
    },
    sample=lambda state, key, n: generate(state['g'], state['g']['params'], key, n)[0],
    unlabeled_views=('raw',),
  )
