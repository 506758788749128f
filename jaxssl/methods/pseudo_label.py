"""Pseudo-labeling (Lee 2013): the model's own confident predictions as hard labels.

The argmax of the (stop-gradient) prediction on a weakly augmented unlabeled image is its target
where the confidence is at least the threshold; the unlabeled weight ramps linearly from 0 to λu
over the first `ramp_steps` steps (Lee's α(t)). Threshold 0.95 and a ramp over 0.4 of 2^20 steps
as USB's config.
"""

import jax
import jax.numpy as jnp

from jaxssl import core
from jaxssl.methods import DataSpec, Method
from jaxssl.methods import _classifier as C


def defaults() -> dict:
  return C.defaults() | dict(threshold=0.95, ramp_steps=419_430)


def make(config, data: DataSpec) -> Method:
  def objective(net, params, state, batch, key, step, hp):
    k_l, k_u = jax.random.split(key)
    x_l = C.labeled_images(config, batch, k_l)
    u = C.weak(config, batch['x_u'], k_u)
    (logits_l, logits_u), rest = C.forward_all(net, params, state, (x_l, u))
    sup = C.cross_entropy(logits_l, batch['y_l']).mean()
    target = jax.lax.stop_gradient(logits_u)
    mask = (jnp.max(jax.nn.softmax(target), -1) >= hp['threshold']).astype(jnp.float32)
    unsup = jnp.mean(C.cross_entropy(logits_u, jnp.argmax(target, -1)) * mask)
    weight = hp['lambda_u'] * C.ramp(step, config.ramp_steps)
    return C.combine(rest, sup, unsup, weight, core.monitors(batch, logits_l, target, mask))

  return C.make(
    config, data, objective, unlabeled_views=('weak',), step_inputs=('lambda_u', 'threshold')
  )
