"""Π-model (Laine & Aila 2017): two stochastic augmentations of an image should agree.

The mean squared difference of the softmax outputs on two weak views of each unlabeled image
(one view is the stop-gradient target, as USB), weighted by λu = 10 times a sigmoid ramp-up
exp(−5(1 − t)²) over the first `ramp_steps` (USB: 0.4 of 2^20). Labeled and both unlabeled views
go through one forward.
"""

import jax
import jax.numpy as jnp

from jaxssl import core
from jaxssl.methods import DataSpec, Method
from jaxssl.methods import _classifier as C


def defaults() -> dict:
  return C.defaults() | dict(lambda_u=10.0, ramp_steps=419_430)


def consistency(logits, target_logits) -> jax.Array:
  """Mean over examples and classes of the squared difference of probabilities."""
  return jnp.mean((jax.nn.softmax(logits) - jax.nn.softmax(target_logits)) ** 2)


def make(config, data: DataSpec) -> Method:
  def objective(net, params, state, batch, key, step, hp):
    k_l, k_1, k_2 = jax.random.split(key, 3)
    x_l = C.labeled_images(config, batch, k_l)
    u_1, u_2 = C.weak(config, batch['x_u'], k_1), C.weak(config, batch['x_u'], k_2)
    (logits_l, logits_1, logits_2), rest = C.forward_all(net, params, state, (x_l, u_1, u_2))
    sup = C.cross_entropy(logits_l, batch['y_l']).mean()
    unsup = consistency(logits_1, jax.lax.stop_gradient(logits_2))
    weight = hp['lambda_u'] * C.ramp(step, config.ramp_steps, 'sigmoid')
    return C.combine(rest, sup, unsup, weight, core.monitors(batch, logits_l, logits_2))

  return C.make(config, data, objective, unlabeled_views=('weak', 'weak'))
