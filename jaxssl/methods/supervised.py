"""Labeled-only baseline: the same network, optimizer, averaging and schedule, no unlabeled data."""

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxssl import models, optim
from jaxssl.data import to_float
from jaxssl.methods import DataSpec, Method
from jaxssl.methods.improved_gan import adam, discriminator


def defaults() -> dict:
  return dict(
    lr=0.003,
    adam_b1=0.5,
    adam_b2=0.999,
    lr_decay_fraction=0.0,
    disc_widths=(1000, 500, 250, 250, 250),
    input_noise=0.3,
    hidden_noise=0.5,
    polyak_decay=0.9999,
    data_init=True,
  )


def make(config, data: DataSpec) -> Method:
  new = lambda key: discriminator(config, data, key)
  graph = models.split(nnx.eval_shape(lambda: new(jax.random.key(0))))[0]
  opt, lr = adam(config)
  ema, average = optim.polyak(config.polyak_decay)

  def init(key, init_images):
    key, k_init = jax.random.split(key)
    net = new(key)
    if config.data_init:
      net.data_init(to_float(init_images), k_init)
    _, params, rest = models.split(net)
    return dict(params=params, rest=rest, opt=opt.init(params), polyak=ema.init(params))

  def logits(state, params, x, key):
    return models.apply(graph, params, state['rest'], to_float(x), key)[0][0]

  def train_step(state, batch, key, step):
    def loss_fn(params):
      out = logits(state, params, batch['x_l'], key)
      return optax.softmax_cross_entropy_with_integer_labels(out, batch['y_l']).mean(), out

    (loss, out), grads = jax.value_and_grad(loss_fn, has_aux=True)(state['params'])
    updates, opt_state = opt.update(grads, state['opt'], state['params'])
    params = optax.apply_updates(state['params'], updates)
    _, avg = ema.update(params, state['polyak'])
    metrics = {
      'loss/sup': loss,
      'monitor/train_acc': jnp.mean(jnp.argmax(out, -1) == batch['y_l']),
      'monitor/lr': lr(step),
    }
    return dict(state, params=params, opt=opt_state, polyak=avg), metrics

  return Method(
    init=init,
    train_step=train_step,
    predict=lambda state, x: logits(state, average(state['polyak']), x, None),
    extra_predictors={'raw': lambda state, x: logits(state, state['params'], x, None)},
    unlabeled_views=(),
  )
