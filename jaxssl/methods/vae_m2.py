"""Semi-supervised deep generative models M2 and M1+M2 (Kingma, Rezende, Mohamed, Welling 2014).

M2: q(y|x), q(z|x,y), p(x|y,z). The loss is the paper's J^alpha (Eq. 9: summed bounds plus
alpha = 0.1·N times the *mean* labeled -log q(y|x)) divided by N, as the authors' code computes it
(dpkingma/nips14-ssl: beta = alpha·n_tot/n_labeled on the labeled sum):
mean U(x) + (N_l/N) mean L(x,y) + 0.1 mean(-log q(y|x)).
M1+M2 (`stacked`): a VAE M1 trains on pixels first; M2 then models M1's latent code, without the
latent units M1 left unused (the authors drop units whose means vary by less than 0.1; here they are
masked out of M2's inputs and likelihood, so shapes stay static under jit). M1 trains for the first
`m1_fraction` of the steps, or comes from another run (`init_from`, `init_keys=m1`) with
m1_fraction=0, as the authors reused one M1 for every M2 run.
"""

import math

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxssl import config as config_lib
from jaxssl import core
from jaxssl.data import to_float
from jaxssl.errors import UserError
from jaxssl.methods import DataSpec, Method
from jaxssl.models.vae import (
  M1,
  M2,
  labeled_bound,
  m1_bound,
  unlabeled_bound,
)


def defaults() -> dict:
  return dict(
    lr=3e-4,
    adam_b1=0.9,
    adam_b2=0.999,
    lr_decay_fraction=0.0,  # M2's lr decays linearly to 0 over this last part of its steps
    init_scale=1e-3,  # M2's weights start as N(0, init_scale^2), q(y|x) uniform (authors); 0: Flax
    stacked=False,  # True: M1+M2
    m1_fraction=0.5,  # stacked: the first fraction of num_steps trains M1, the rest M2
    m1_lr=3e-4,
    m1_keep_std=0.1,  # stacked: M1 units whose means have a smaller std over a batch are dropped
    # stacked: train M2 on z1 ~ q(z1|x) drawn afresh each step, as the authors' code does. On the
    # means instead, the Gaussian likelihood collapses onto unused latent units (38 % vs 21 % test
    # error after 30+30 epochs, RESULTS.md). Evaluation always uses the means.
    m1_sample=True,
    m1_latent=50,
    m1_widths=(500, 500),  # the authors' M1 for M1+M2 (models/mnist_z_x_50-500-500_longrun)
    latent=50,
    widths=(500,),
    alpha=0.1,  # weight of the mean labeled cross-entropy: the paper's 0.1·N on its summed J
    binarize=True,  # Bernoulli pixels drawn afresh every step (dynamic binarization)
  )


def make(config, data: DataSpec) -> Method:
  dx, k = math.prod(data.image_shape), data.num_classes
  new_m1 = lambda key: M1(dx, config.m1_latent, config.m1_widths, rngs=nnx.Rngs(key))
  dm2 = config.m1_latent if config.stacked else dx
  new_m2 = lambda key: M2(
    dm2, config.latent, k, config.widths, gaussian_x=config.stacked, rngs=nnx.Rngs(key)
  )
  graph_m1, graph_m2 = core.graphdef(new_m1), core.graphdef(new_m2)
  m1_steps = int(config.m1_fraction * config.num_steps) if config.stacked else 0
  given = config.init_from and 'm1' in (config_lib.init_keys(config) or ['m1'])
  if config.stacked and m1_steps == 0 and not given:
    raise UserError(
      f'M1+M2 with m1_fraction={config.m1_fraction} of {config.num_steps} steps trains no M1: set '
      'init_from to a run that trained one (experiments/configs/mnist_vae_m2.py:m1), init_keys=m1'
    )
  adam = lambda lr, schedule, steps: core.optimizer(
    'adam',
    lr=lr,
    num_steps=steps,
    schedule_name=schedule,
    decay_fraction=config.lr_decay_fraction,
    b1=config.adam_b1,
    b2=config.adam_b2,
  )
  tx_m1, _ = adam(config.m1_lr, 'constant', max(m1_steps, 1))
  # M2's optimizer counts only M2's own updates, so its schedule spans the M2 phase.
  tx_m2, lr = adam(config.lr, 'linear_decay', max(config.num_steps - m1_steps, 1))
  n_labeled = config.labels_per_class * k

  def init(key, init_images):
    k1, k2, k3 = jax.random.split(key, 3)
    m2 = core.model(new_m2(k2), tx_m2)
    if config.init_scale:  # Adam's state starts at 0 whatever the weights
      leaves, tree = jax.tree.flatten(m2['params'])
      keys = jax.random.split(k3, len(leaves))
      normal = [config.init_scale * jax.random.normal(q, w.shape) for q, w in zip(keys, leaves)]
      m2['params'] = jax.tree.unflatten(tree, normal)
    return dict(m1=core.model(new_m1(k1), tx_m1), m2=m2, keep=jnp.ones(config.m1_latent))

  def call(graph, model, method, *args, params=None):
    params = model['params'] if params is None else params
    return core.apply(graph, params, model['rest'], *args, method=method)[0]

  def pixels(images, key):
    x = to_float(images).reshape(images.shape[0], -1)
    return jax.random.bernoulli(key, x).astype(jnp.float32) if config.binarize else x

  def m1_code(state, images):
    return call(graph_m1, state['m1'], 'encoder', to_float(images).reshape(images.shape[0], -1))

  def m1_latent(code, key, keep):
    """M1's kept latent units: its means, or samples of q(z1|x) if m1_sample."""
    mean, log_var = code
    if config.m1_sample:
      mean = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape)
    return mean * keep

  def m1_step(state, batch, key, step):
    k_bin, k_z = jax.random.split(key)
    x = pixels(batch['x_u'], k_bin)
    eps = jax.random.normal(k_z, (x.shape[0], config.m1_latent))

    def loss_fn(params):
      bound, rest = core.apply(graph_m1, params, state['m1']['rest'], x, eps, method=m1_bound)
      return bound.mean(), (rest, None)

    m1, loss, _ = core.update(state['m1'], tx_m1, loss_fn)
    m2_only = 'loss/labeled loss/unlabeled loss/ce monitor/train_acc monitor/pseudo_acc'.split()
    return dict(state, m1=m1), {
      **dict.fromkeys(m2_only, jnp.zeros(())),
      'loss/m1': loss,
      'monitor/m1_units_kept': jnp.sum(state['keep']),
    }

  def m2_step(state, batch, key, step):
    k_xl, k_xu, k_l, k_u = jax.random.split(key, 4)
    keep, mask = state['keep'], None
    if config.stacked:  # M1 is final from here on: choose its units once, on the first M2 batch
      code_u = m1_code(state, batch['x_u'])
      spread = jnp.std(code_u[0], axis=0)
      keep = jnp.where(step == m1_steps, (spread > config.m1_keep_std).astype(keep.dtype), keep)
      mask = keep
      x_l = m1_latent(m1_code(state, batch['x_l']), k_xl, keep)
      x_u = m1_latent(code_u, k_xu, keep)
    else:
      x_l, x_u = pixels(batch['x_l'], k_xl), pixels(batch['x_u'], k_xu)
    y_l = jax.nn.one_hot(batch['y_l'], k)
    eps_l = jax.random.normal(k_l, (x_l.shape[0], config.latent))
    eps_u = jax.random.normal(k_u, (x_u.shape[0], config.latent))

    def objective(model):
      bound_l = labeled_bound(model, x_l, y_l, eps_l, config.stacked, mask).mean()
      bound_u, logits_u = unlabeled_bound(model, x_u, eps_u, config.stacked, mask)
      logits_l = model.classifier(x_l)
      ce = optax.softmax_cross_entropy(logits_l, y_l).mean()
      frac = n_labeled / data.num_unlabeled
      loss = bound_u.mean() + frac * bound_l + config.alpha * ce
      return loss, (bound_l, bound_u.mean(), ce, logits_l, logits_u)

    def loss_fn(params):
      (loss, aux), rest = core.apply(graph_m2, params, state['m2']['rest'], method=objective)
      return loss, (rest, aux)

    m2, _, (bound_l, bound_u, ce, logits_l, logits_u) = core.update(state['m2'], tx_m2, loss_fn)
    return dict(state, m2=m2, keep=keep), {
      'loss/m1': jnp.zeros(()),
      'loss/labeled': bound_l,
      'loss/unlabeled': bound_u,
      'loss/ce': ce,
      **core.monitors(batch, logits_l, logits_u),
      'monitor/m1_units_kept': jnp.sum(keep),
    }

  def train_step(state, batch, key, step, hp):
    if config.stacked:
      state, metrics = jax.lax.cond(step < m1_steps, m1_step, m2_step, state, batch, key, step)
    else:
      state, metrics = m2_step(state, batch, key, step)
    return state, {
      **metrics,
      'monitor/lr': jnp.where(step < m1_steps, config.m1_lr, lr(step - m1_steps)),
      'monitor/phase_m1': step < m1_steps,
    }

  def eval_metrics(state, images, keys):
    """M1's negative bound on the test images (binarized, one z1 each, as in training): what the
    authors trained M1 until it stopped improving."""
    split = jax.vmap(jax.random.split)(keys)
    x = jax.vmap(lambda k, im: pixels(im[None], k)[0])(split[:, 0], images)
    eps = jax.vmap(lambda k: jax.random.normal(k, (config.m1_latent,)))(split[:, 1])
    return {'m1/negative_bound': call(graph_m1, state['m1'], m1_bound, x, eps)}

  def predict(state, images):
    x = to_float(images).reshape(images.shape[0], -1)
    if config.stacked:
      x = call(graph_m1, state['m1'], 'encoder', x)[0] * state['keep']
    return call(graph_m2, state['m2'], 'classifier', x)

  def sample(state, key, n):
    """Class-conditional samples, one row per class; each column shares its style z."""
    per_class = max(n // k, 1)
    z = jnp.tile(jax.random.normal(key, (per_class, config.latent)), (k, 1))
    y = jnp.repeat(jnp.eye(k), per_class, 0)
    out = call(graph_m2, state['m2'], 'decoder', jnp.concatenate([z, y], -1))
    if config.stacked:  # dropped units at their prior mean
      out = call(graph_m1, state['m1'], 'decoder', out[0] * state['keep'])
    return jax.nn.sigmoid(out).reshape(-1, *data.image_shape)

  return Method(
    init=init,
    train_step=train_step,
    predict=predict,
    sample=sample,
    eval_metrics=eval_metrics if config.stacked else None,
  )
