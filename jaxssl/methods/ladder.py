"""Ladder networks (Rasmus, Valpola, Honkala, Berglund, Raiko 2015), the full MLP ladder.

Corrupted and clean encoders (Gaussian noise at every layer), a decoder of vanilla combinators,
layer-wise denoising costs against the clean batch-normalized targets, plus the supervised
cross-entropy of the corrupted output. Labeled and unlabeled batches are normalized separately.
"""

import math

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxssl import models, optim
from jaxssl.data import to_float
from jaxssl.errors import UserError
from jaxssl.methods import DataSpec, Method, known_label_accuracy
from jaxssl.models.ladder import Ladder, denoising_costs


def defaults() -> dict:
  return dict(
    lr=0.002,
    adam_b1=0.9,
    adam_b2=0.999,
    lr_decay_fraction=1 / 3,  # the paper: 100 epochs at lr, then 50 of linear decay to 0
    widths=(1000, 500, 250, 250, 250),
    noise_std=0.3,
    denoising_weights=(1000.0, 10.0, 0.1, 0.1, 0.1, 0.1, 0.1),  # input to top
    bn_momentum=0.99,  # running statistics used for evaluation
  )


def make(config, data: DataSpec) -> Method:
  dims = (math.prod(data.image_shape), *config.widths, data.num_classes)
  if len(config.denoising_weights) != len(dims):
    raise UserError(
      f'denoising_weights needs {len(dims)} values (input, {len(config.widths)} hidden, top), '
      f'got {len(config.denoising_weights)}'
    )
  new = lambda key: Ladder(dims, rngs=nnx.Rngs(key), bn_momentum=config.bn_momentum)
  graph = models.split(nnx.eval_shape(lambda: new(jax.random.key(0))))[0]
  lr = optim.constant_then_linear_decay(config.lr, config.num_steps, config.lr_decay_fraction)
  opt = optax.adam(lr, b1=config.adam_b1, b2=config.adam_b2)
  weights = jnp.asarray(config.denoising_weights)
  flat = lambda images: to_float(images).reshape(images.shape[0], -1)

  def init(key, init_images):
    _, params, rest = models.split(new(key))
    return dict(params=params, rest=rest, opt=opt.init(params))

  def train_step(state, batch, key, step):
    x_l, x_u = flat(batch['x_l']), flat(batch['x_u'])
    k_l, k_u = jax.random.split(key)

    def loss_fn(params):
      model = nnx.merge(graph, params, state['rest'], copy=True)
      logits_l, _, _, _ = model.encode(x_l, config.noise_std, k_l)
      ce = optax.softmax_cross_entropy_with_integer_labels(logits_l, batch['y_l']).mean()
      logits_c, zs_c, _, _ = model.encode(x_u, config.noise_std, k_u)
      logits_u, zs, means, stds = model.encode(x_u, 0.0, None)
      costs = jnp.stack(denoising_costs(zs, model.decode(zs_c, logits_c), means, stds))
      model.update_running_stats(jax.lax.stop_gradient(means), jax.lax.stop_gradient(stds))
      loss = ce + jnp.dot(weights, costs)
      return loss, (ce, costs, logits_l, logits_u, nnx.state(model, nnx.Not(nnx.Param)))

    (loss, (ce, costs, logits_l, logits_u, rest)), grads = jax.value_and_grad(
      loss_fn, has_aux=True
    )(state['params'])
    updates, opt_state = opt.update(grads, state['opt'], state['params'])
    new_state = dict(params=optax.apply_updates(state['params'], updates), rest=rest, opt=opt_state)
    metrics = {
      'loss/total': loss,
      'loss/sup': ce,
      **{f'loss/denoise_{l}': c for l, c in enumerate(costs)},
      'monitor/train_acc': jnp.mean(jnp.argmax(logits_l, -1) == batch['y_l']),
      'monitor/pseudo_acc': known_label_accuracy(logits_u, batch['y_u']),
      'monitor/lr': lr(step),
    }
    return new_state, metrics

  def predict(state, images):
    return nnx.merge(graph, state['params'], state['rest'], copy=True)(flat(images))

  return Method(init=init, train_step=train_step, predict=predict)
