"""MixMatch (Berthelot et al. 2019) as google-research/mixmatch trains it.

K = 2 weak augmentations of each unlabeled image; their averaged prediction, sharpened with
T = 0.5, is the guessed label. Labeled and unlabeled examples with their (guessed) labels are
mixed with a random partner from the whole batch, λ ~ Beta(0.75, 0.75) per example and
λ' = max(λ, 1 − λ) so each mixed example stays closest to its own. Cross-entropy on the mixed
labeled part, mean squared error of probabilities on the mixed unlabeled part weighted by
λu = 75 ramped up linearly over 16,384 steps (1024 kimg at 64 images a step). Adam 0.002
(constant), decoupled weight decay 0.02·lr on kernels, EMA 0.999. One forward over all mixed
images stands in for the official code's interleaving: batch norm sees them together.
"""

import jax
import jax.numpy as jnp

from jaxssl import core
from jaxssl.errors import UserError
from jaxssl.methods import DataSpec, Method
from jaxssl.methods import _classifier as C


def defaults() -> dict:
  return C.defaults(
    optimizer='adam',
    lr=0.002,
    lr_schedule='constant',
    weight_decay=0.02,
    weight_decay_mode='decoupled',
    lambda_u=75.0,
  ) | dict(temperature=0.5, mixup_alpha=0.75, num_augmentations=2, ramp_steps=16_384)


def sharpen(probs: jax.Array, temperature: float) -> jax.Array:
  p = probs ** (1.0 / temperature)
  return p / jnp.sum(p, -1, keepdims=True)


def mixup(key, x, y, alpha: float):
  """Mixes every example with a random partner; λ' = max(λ, 1 − λ) per example."""
  k_lam, k_perm = jax.random.split(key)
  lam = jax.random.beta(k_lam, alpha, alpha, (x.shape[0],))
  lam = jnp.maximum(lam, 1.0 - lam)
  perm = jax.random.permutation(k_perm, x.shape[0])
  mixed_x = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[perm]
  return mixed_x, lam[:, None] * y + (1 - lam[:, None]) * y[perm]


def make(config, data: DataSpec) -> Method:
  if config.num_augmentations < 1:
    raise UserError(f'num_augmentations must be at least 1, got {config.num_augmentations}')

  def objective(net, params, state, batch, key, step, hp):
    k_l, k_u, k_mix = jax.random.split(key, 3)
    x_l = C.labeled_images(config, batch, k_l)
    views = [
      C.weak(config, batch['x_u'], k) for k in jax.random.split(k_u, config.num_augmentations)
    ]
    guess_logits, _ = net(params, state['rest'], jnp.concatenate(views), train=True)
    guess_logits = jax.lax.stop_gradient(guess_logits)
    probs = jnp.mean(jnp.stack(jnp.split(jax.nn.softmax(guess_logits), len(views))), 0)
    guess = sharpen(probs, config.temperature)
    y_l = jax.nn.one_hot(batch['y_l'], data.num_classes)
    x_all = jnp.concatenate([x_l, *views])
    y_all = jnp.concatenate([y_l, *[guess] * len(views)])
    mixed_x, mixed_y = mixup(k_mix, x_all, y_all, config.mixup_alpha)
    logits, rest = net(params, state['rest'], mixed_x, train=True)
    n = len(x_l)
    sup = C.cross_entropy(logits[:n], mixed_y[:n]).mean()
    unsup = jnp.mean((jax.nn.softmax(logits[n:]) - mixed_y[n:]) ** 2)
    weight = hp['lambda_u'] * C.ramp(step, config.ramp_steps)
    return C.combine(rest, sup, unsup, weight, core.monitors(batch, logits[:n], jnp.log(probs)))

  return C.make(config, data, objective, unlabeled_views=('weak',) * config.num_augmentations)
