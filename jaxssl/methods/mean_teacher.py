"""Mean Teacher (Tarvainen & Valpola 2017): the EMA of the student is the consistency target.

The teacher's weights are the exponential moving average (decay 0.999, optax.incremental_update)
of the student's, the same average the trainer evaluates. The student's softmax on one weak view
should match the teacher's on another (mean squared difference), weighted by λu = 50 times a
sigmoid ramp-up over `ramp_steps` (USB's values: 0.4 of 2^20). The teacher's batch-norm pass uses
its own batch statistics and updates nothing. The student's unlabeled logits carry the gradient
(USB's meanteacher.py takes them from the no-grad teacher instead, so its unlabeled loss is inert).
"""

import jax

from jaxssl import core
from jaxssl.methods import DataSpec, Method, pi_model
from jaxssl.methods import _classifier as C


def defaults() -> dict:
  return C.defaults() | dict(lambda_u=50.0, ramp_steps=419_430)


def make(config, data: DataSpec) -> Method:
  def objective(net, params, state, batch, key, step, hp):
    k_l, k_s, k_t = jax.random.split(key, 3)
    x_l = C.labeled_images(config, batch, k_l)
    u_s, u_t = C.weak(config, batch['x_u'], k_s), C.weak(config, batch['x_u'], k_t)
    (logits_l, logits_s), rest = C.forward_all(net, params, state, (x_l, u_s))
    logits_t = jax.lax.stop_gradient(net(state['avg'], state['rest'], u_t, train=True)[0])
    sup = C.cross_entropy(logits_l, batch['y_l']).mean()
    unsup = pi_model.consistency(logits_s, logits_t)
    weight = hp['lambda_u'] * C.ramp(step, config.ramp_steps, 'sigmoid')
    return C.combine(rest, sup, unsup, weight, core.monitors(batch, logits_l, logits_t))

  return C.make(config, data, objective, unlabeled_views=('weak', 'weak'))
