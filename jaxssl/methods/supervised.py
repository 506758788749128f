"""Labeled-only baseline: the SSL methods' backbone, optimizer, EMA and schedule, no unlabeled data.

Every ablation table needs it; set `backbone` and the optimizer knobs to match the method it is
compared with (experiments/configs/mnist_supervised.py matches Improved-GAN).
"""

import jax

from jaxssl import core
from jaxssl.methods import DataSpec, Method
from jaxssl.methods import _classifier as C


def defaults() -> dict:
  return C.defaults()


def make(config, data: DataSpec) -> Method:
  def objective(net, params, state, batch, key, step, hp):
    k_aug, k_net = jax.random.split(key)
    x = C.labeled_images(config, batch, k_aug)
    logits, rest = net(params, state['rest'], x, train=True, key=k_net)
    loss = C.cross_entropy(logits, batch['y_l']).mean()
    return loss, C.Aux(rest, {'loss/sup': loss, **core.monitors(batch, logits)})

  return C.make(config, data, objective, unlabeled_views=(), step_inputs=())
