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

from jaxssl import core
from jaxssl.data import to_float
from jaxssl.errors import UserError
from jaxssl.methods import DataSpec, Method
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
  graph = core.graphdef(new)
  tx, lr = core.adam(config)
  weights = jnp.asarray(config.denoising_weights)
  flat = lambda images: to_float(images).reshape(images.shape[0], -1)

  def init(key, init_images):
    return core.model(new(key), tx)

  def train_step(state, batch, key, step, hp):
    x_l, x_u = flat(batch['x_l']), flat(batch['x_u'])
    k_l, k_u = jax.random.split(key)

    def costs(model):
      """The supervised cost of the corrupted labeled pass and the unlabeled denoising costs."""
      logits_l, _, _, _ = model.encode(x_l, config.noise_std, k_l)
      ce = optax.softmax_cross_entropy_with_integer_labels(logits_l, batch['y_l']).mean()
      logits_c, zs_c, _, _ = model.encode(x_u, config.noise_std, k_u)
      logits_u, zs, means, stds = model.encode(x_u, 0.0, None)
      denoise = jnp.stack(denoising_costs(zs, model.decode(zs_c, logits_c), means, stds))
      model.update_running_stats(jax.lax.stop_gradient(means), jax.lax.stop_gradient(stds))
      return ce, denoise, logits_l, logits_u

    def loss_fn(params):
      (ce, denoise, logits_l, logits_u), rest = core.apply(
        graph, params, state['rest'], method=costs
      )
      return ce + jnp.dot(weights, denoise), (rest, (ce, denoise, logits_l, logits_u))

    state, loss, (ce, denoise, logits_l, logits_u) = core.update(state, tx, loss_fn)
    metrics = {
      'loss/total': loss,
      'loss/sup': ce,
      **{f'loss/denoise_{l}': c for l, c in enumerate(denoise)},
      **core.monitors(batch, logits_l, logits_u, lr=lr, step=step),
    }
    return state, metrics

  def predict(state, images):
    return core.apply(graph, state['params'], state['rest'], flat(images))[0]

  return Method(init=init, train_step=train_step, predict=predict)
