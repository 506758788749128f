"""Semi-supervised deep generative models M2 and M1+M2 (Kingma, Rezende, Mohamed, Welling 2014).

M2: q(y|x), q(z|x,y), p(x|y,z). The loss is the paper's J^alpha (Eq. 9: summed bounds plus
alpha = 0.1·N times the *mean* labeled -log q(y|x)) divided by N, as the authors' code computes it
(dpkingma/nips14-ssl: beta = alpha·n_tot/n_labeled on the labeled sum):
mean U(x) + (N_l/N) mean L(x,y) + 0.1 mean(-log q(y|x)).
M1+M2 (`stacked`): a VAE M1 trains on pixels first; M2 then models M1's latent code, without the
latent units M1 left unused (the authors drop units whose means vary by less than 0.1; here they are
masked out of M2's inputs and likelihood, so shapes stay static under jit).
"""

import math

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxssl import models, optim
from jaxssl.data import to_float
from jaxssl.methods import DataSpec, Method, known_label_accuracy
from jaxssl.models.vae import M1, M2


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


def gaussian_kl(mean, log_var):
  """KL(N(mean, exp(log_var)) || N(0, I)), summed over the last axis."""
  return 0.5 * jnp.sum(jnp.exp(log_var) + jnp.square(mean) - 1.0 - log_var, -1)


def bernoulli_log_prob(logits, x):
  return -jnp.sum(optax.sigmoid_binary_cross_entropy(logits, x), -1)


def gaussian_log_prob(mean, log_var, x, mask=None):
  """Diagonal Gaussian log-density, summed over the last axis (over the units where mask is 1)."""
  per_unit = -0.5 * (jnp.log(2 * jnp.pi) + log_var + jnp.square(x - mean) / jnp.exp(log_var))
  return jnp.sum(per_unit if mask is None else per_unit * mask, -1)


def labeled_bound(model: M2, x, y_onehot, eps, gaussian_x: bool, mask=None):
  """L(x, y) = -E_q(z|x,y)[log p(x|y,z) + log p(y) + log p(z) - log q(z|x,y)].

  One reparameterized sample z = mean + std * eps; the KL term in closed form. `mask` (Gaussian x
  only) leaves dropped input units out of the likelihood.
  """
  mean, log_var = model.encoder(jnp.concatenate([x, y_onehot], -1))
  z = mean + jnp.exp(0.5 * log_var) * eps
  out = model.decoder(jnp.concatenate([z, y_onehot], -1))
  log_px = gaussian_log_prob(*out, x, mask) if gaussian_x else bernoulli_log_prob(out, x)
  log_py = -jnp.log(y_onehot.shape[-1])
  return -(log_px + log_py - gaussian_kl(mean, log_var))


def unlabeled_bound(model: M2, x, eps, gaussian_x: bool, mask=None):
  """U(x) = sum_y q(y|x) L(x,y) - H(q(y|x)), every class enumerated; also q(y|x)'s logits.

  Every class of an example shares its noise eps (common random numbers), so U(x) equals
  L(x, c) exactly when q(y|x) is one-hot on c.
  """
  logits = model.classifier(x)
  k = logits.shape[-1]
  ys = jnp.tile(jnp.eye(k), (x.shape[0], 1))  # (B*K, K): every class for each example
  rep = lambda a: jnp.repeat(a, k, 0)
  bound = labeled_bound(model, rep(x), ys, rep(eps), gaussian_x, mask).reshape(-1, k)
  q = jax.nn.softmax(logits)
  entropy = -jnp.sum(q * jax.nn.log_softmax(logits), -1)
  return jnp.sum(q * bound, -1) - entropy, logits


def make(config, data: DataSpec) -> Method:
  dx, k = math.prod(data.image_shape), data.num_classes
  new_m1 = lambda key: M1(dx, config.m1_latent, config.m1_widths, rngs=nnx.Rngs(key))
  dm2 = config.m1_latent if config.stacked else dx
  new_m2 = lambda key: M2(
    dm2, config.latent, k, config.widths, gaussian_x=config.stacked, rngs=nnx.Rngs(key)
  )
  graph_m1 = models.split(nnx.eval_shape(lambda: new_m1(jax.random.key(0))))[0]
  graph_m2 = models.split(nnx.eval_shape(lambda: new_m2(jax.random.key(0))))[0]
  m1_steps = int(config.m1_fraction * config.num_steps) if config.stacked else 0
  # opt_m2 counts only M2's own updates, so its schedule spans the M2 phase.
  lr = optim.constant_then_linear_decay(
    config.lr, config.num_steps - m1_steps, config.lr_decay_fraction
  )
  adam = lambda lr: optax.adam(lr, b1=config.adam_b1, b2=config.adam_b2)
  opt_m1, opt_m2 = adam(config.m1_lr), adam(lr)
  n_labeled = config.labels_per_class * k

  def init(key, init_images):
    k1, k2, k3 = jax.random.split(key, 3)
    _, p1, _ = models.split(new_m1(k1))
    _, p2, _ = models.split(new_m2(k2))
    if config.init_scale:
      leaves, tree = jax.tree.flatten(p2)
      keys = jax.random.split(k3, len(leaves))
      normal = [config.init_scale * jax.random.normal(q, w.shape) for q, w in zip(keys, leaves)]
      p2 = jax.tree.unflatten(tree, normal)
    return dict(
      m1=p1, m2=p2, opt_m1=opt_m1.init(p1), opt_m2=opt_m2.init(p2), keep=jnp.ones(config.m1_latent)
    )

  m1 = lambda params: nnx.merge(graph_m1, params, copy=True)
  m2 = lambda params: nnx.merge(graph_m2, params, copy=True)

  def pixels(images, key):
    x = to_float(images).reshape(images.shape[0], -1)
    return jax.random.bernoulli(key, x).astype(jnp.float32) if config.binarize else x

  def m1_code(state, images):
    return m1(state['m1']).encoder(to_float(images).reshape(images.shape[0], -1))

  def m1_latent(code, key, keep):
    """M1's kept latent units: its means, or samples of q(z1|x) if m1_sample."""
    mean, log_var = code
    if config.m1_sample:
      mean = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape)
    return mean * keep

  def m1_step(state, batch, key, step):
    k_bin, k_z = jax.random.split(key)

    def loss_fn(params):
      model = m1(params)
      x = pixels(batch['x_u'], k_bin)
      mean, log_var = model.encoder(x)
      z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(k_z, mean.shape)
      return jnp.mean(gaussian_kl(mean, log_var) - bernoulli_log_prob(model.decoder(z), x))

    loss, grads = jax.value_and_grad(loss_fn)(state['m1'])
    updates, opt_state = opt_m1.update(grads, state['opt_m1'], state['m1'])
    new = dict(state, m1=optax.apply_updates(state['m1'], updates), opt_m1=opt_state)
    zeros = jnp.zeros(())
    return new, {
      'loss/m1': loss,
      'loss/labeled': zeros,
      'loss/unlabeled': zeros,
      'loss/ce': zeros,
      'monitor/train_acc': zeros,
      'monitor/pseudo_acc': zeros,
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

    def loss_fn(params):
      model = m2(params)
      eps_l = jax.random.normal(k_l, (x_l.shape[0], config.latent))
      eps_u = jax.random.normal(k_u, (x_u.shape[0], config.latent))
      bound_l = labeled_bound(model, x_l, y_l, eps_l, config.stacked, mask).mean()
      bound_u, logits_u = unlabeled_bound(model, x_u, eps_u, config.stacked, mask)
      logits_l = model.classifier(x_l)
      ce = optax.softmax_cross_entropy(logits_l, y_l).mean()
      frac = n_labeled / data.num_unlabeled
      loss = bound_u.mean() + frac * bound_l + config.alpha * ce
      return loss, (bound_l, bound_u.mean(), ce, logits_l, logits_u)

    (_, (bound_l, bound_u, ce, logits_l, logits_u)), grads = jax.value_and_grad(
      loss_fn, has_aux=True
    )(state['m2'])
    updates, opt_state = opt_m2.update(grads, state['opt_m2'], state['m2'])
    new = dict(state, m2=optax.apply_updates(state['m2'], updates), opt_m2=opt_state, keep=keep)
    return new, {
      'loss/m1': jnp.zeros(()),
      'loss/labeled': bound_l,
      'loss/unlabeled': bound_u,
      'loss/ce': ce,
      'monitor/train_acc': jnp.mean(jnp.argmax(logits_l, -1) == batch['y_l']),
      'monitor/pseudo_acc': known_label_accuracy(logits_u, batch['y_u']),
      'monitor/m1_units_kept': jnp.sum(keep),
    }

  def train_step(state, batch, key, step):
    if config.stacked:
      state, metrics = jax.lax.cond(step < m1_steps, m1_step, m2_step, state, batch, key, step)
    else:
      state, metrics = m2_step(state, batch, key, step)
    return state, {
      **metrics,
      'monitor/lr': jnp.where(step < m1_steps, config.m1_lr, lr(step - m1_steps)),
      'monitor/phase_m1': step < m1_steps,
    }

  def predict(state, images):
    x = to_float(images).reshape(images.shape[0], -1)
    if config.stacked:
      x = m1(state['m1']).encoder(x)[0] * state['keep']
    return m2(state['m2']).classifier(x)

  def sample(state, key, n):
    """Class-conditional samples, one row per class; each column shares its style z."""
    per_class = max(n // k, 1)
    z = jnp.tile(jax.random.normal(key, (per_class, config.latent)), (k, 1))
    y = jnp.repeat(jnp.eye(k), per_class, 0)
    out = m2(state['m2']).decoder(jnp.concatenate([z, y], -1))
    if config.stacked:  # dropped units at their prior mean
      out = m1(state['m1']).decoder(out[0] * state['keep'])
    return jax.nn.sigmoid(out).reshape(-1, *data.image_shape)

  return Method(init=init, train_step=train_step, predict=predict, sample=sample)
