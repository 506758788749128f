"""The training core every method is written on.

A method trains one or more models (a classifier: one; Improved-GAN: D and G; M1+M2: M1 and M2;
the Ladder: one). Each is a `Model`, a dict pytree:

  params  the trainable weights (nnx.Param)
  rest    everything else the module holds (batch-norm statistics, fixed scales)
  opt     its optimizer's state
  avg     its weight average, if it keeps one: the model a method evaluates, Mean Teacher's teacher

and a method reads as its models, its losses and the order of its updates:

  tx = core.optimizer(config.optimizer, lr=..., num_steps=config.num_steps, ...)
  model = core.model(module, tx, average='ema')                       # init
  model, loss, aux = core.update(model, tx, loss_fn, step, decay)     # train_step
  logits = core.apply(graph, core.averaged(model), model['rest'], x)  # predict

`loss_fn(params) -> (loss, (rest, aux))`: the loss, the non-parameter state after the pass that
should update it (batch-norm statistics), and whatever the method wants back.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

Model = dict[str, Any]
OPTIMIZERS = ('sgd', 'adam')
SCHEDULES = ('cosine', 'linear_decay', 'constant')
WEIGHT_DECAY = ('l2', 'decoupled')
AVERAGES = ('none', 'ema', 'polyak')


# The one way to call an NNX module as a pure function of its state.
def split(module: nnx.Module):
  """(graphdef, trainable params, everything else: batch-norm statistics, fixed scales)."""
  return nnx.split(module, nnx.Param, ...)


def graphdef(new: Callable[[jax.Array], nnx.Module]):
  """The graphdef of the module `new(key)` builds, without allocating its arrays."""
  return split(nnx.eval_shape(lambda: new(jax.random.key(0))))[0]


def apply(graph, params, rest, *args, method: str | Callable = '__call__', **kwargs):
  """Calls `method` (a name, or a function of the module) on the merged module; returns (output,
  rest after the call)."""
  # copy: fresh Variables at the current trace level, so BatchNorm may update them inside grad.
  module = nnx.merge(graph, params, rest, copy=True)
  fn = (
    getattr(module, method) if isinstance(method, str) else lambda *a, **k: method(module, *a, **k)
  )
  out = fn(*args, **kwargs)
  return out, nnx.state(module, nnx.Not(nnx.Param))


# The optimizer.
def kernels(params):
  """Conv and dense kernels (and weight-normed directions): the weights decayed (not BN, biases)."""
  return jax.tree_util.tree_map_with_path(
    lambda path, _: any(getattr(p, 'key', None) in ('kernel', 'v') for p in path), params
  )


def schedule(name: str, lr: float, num_steps: int, decay_fraction: float = 0.0) -> optax.Schedule:
  """cosine: FixMatch's lr·cos(7πk/16K); linear_decay: constant, then linearly to 0 over the last
  `decay_fraction` of num_steps (Improved-GAN, Ladder); constant."""
  if name == 'cosine':
    return lambda step: lr * jnp.cos(7 * jnp.pi * step / (16 * num_steps))
  if name == 'linear_decay':
    decay_steps = int(decay_fraction * num_steps)
    return optax.join_schedules(
      [optax.constant_schedule(lr), optax.linear_schedule(lr, 0.0, max(decay_steps, 1))],
      [num_steps - decay_steps],
    )
  return optax.constant_schedule(lr)


def optimizer(
  name: str,
  *,
  lr: float,
  num_steps: int,
  schedule_name: str = 'constant',
  decay_fraction: float = 0.0,
  momentum: float = 0.9,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  eps_root: float = 0.0,
  weight_decay: float = 0.0,
  weight_decay_mode: str = 'l2',
) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(optax chain, lr schedule): SGD (Nesterov when momentum > 0) or Adam, weight decay on kernels
  only, either as an L2 term joining the gradient (FixMatch) or decoupled after the scaling
  (AdamW; MixMatch's w <- w - lr·wd·w)."""
  lr_fn = schedule(schedule_name, lr, num_steps, decay_fraction)
  if name == 'sgd':
    scale = optax.trace(decay=momentum, nesterov=momentum > 0)
  else:
    scale = optax.scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root)
  parts = [scale]
  if weight_decay:
    decay = optax.add_decayed_weights(weight_decay, kernels)
    parts = [decay, scale] if weight_decay_mode == 'l2' else [scale, decay]
  return optax.chain(*parts, optax.scale_by_learning_rate(lr_fn)), lr_fn


def adam(config, **kwargs) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Adam from the knobs the Improved-GAN, Ladder and M2 configs share: lr held, then linearly to 0
  over the last `lr_decay_fraction` of num_steps, β1 = adam_b1, β2 = adam_b2."""
  return optimizer(
    'adam',
    lr=config.lr,
    num_steps=config.num_steps,
    schedule_name='linear_decay',
    decay_fraction=config.lr_decay_fraction,
    b1=config.adam_b1,
    b2=config.adam_b2,
    **kwargs,
  )


# A model's state, its update and its average.
def model(module: nnx.Module, tx: optax.GradientTransformation, average: str = 'none') -> Model:
  """The state of a freshly built module: params, rest, optimizer state and its average."""
  _, params, rest = split(module)
  state = dict(params=params, rest=rest, opt=tx.init(params))
  if average == 'ema':
    state['avg'] = params
  elif average == 'polyak':
    state['avg'] = optax.ema(0.0, debias=True).init(params)
  return state


def update(
  model: Model,
  tx: optax.GradientTransformation,
  loss_fn: Callable,
  step: jax.Array | None = None,
  decay: float | None = None,
) -> tuple[Model, jax.Array, Any]:
  """One optimizer step of `model` on `loss_fn(params) -> (loss, (rest, aux))`, then its average:
  (model, loss, aux)."""
  (loss, (rest, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(model['params'])
  updates, opt = tx.update(grads, model['opt'], model['params'])
  params = optax.apply_updates(model['params'], updates)
  new = dict(model, params=params, rest=rest, opt=opt)
  if 'avg' in model:
    new['avg'] = keep_average(model['avg'], params, step, decay)
  return new, loss, aux


def keep_average(avg, params, step, decay: float):
  """The next average of the weights after `params`, the iterate of step `step`.

  ema (an average that is a params pytree): decay warmed up as min(decay, 1 − 1/(t+1)) (Mean
  Teacher's), so short runs never average in the random init. polyak (an optax EmaState):
  a ← a + (1 − decay)(p − a) from 0, bias-corrected when read (Improved-GAN's Polyak average).
  """
  if isinstance(avg, optax.EmaState):
    return optax.ema(decay, debias=True).update(params, avg)[1]
  warm = jnp.minimum(decay, 1.0 - 1.0 / (step + 1.0))
  return optax.incremental_update(params, avg, 1.0 - warm)


def averaged(model: Model, decay: float | None = None):
  """The averaged weights of `model` (its params if it keeps no average)."""
  avg = model.get('avg')
  if avg is None:
    return model['params']
  if isinstance(avg, optax.EmaState):
    # Before the first step the average is empty (0/0 once bias-corrected): read the weights.
    corrected = optax.tree_utils.tree_bias_correction(avg.ema, decay, avg.count)
    return jax.tree.map(lambda a, p: jnp.where(avg.count > 0, a, p), corrected, model['params'])
  return avg


# What every method logs.
def known_label_accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Accuracy over the examples whose label is known (>= 0): the `monitor/pseudo_acc` of
  unlabeled data, whose true labels are carried for monitoring only."""
  known = labels >= 0
  return jnp.sum((jnp.argmax(logits, -1) == labels) & known) / jnp.maximum(known.sum(), 1)


def monitors(
  batch, logits_l=None, logits_u=None, mask=None, lr=None, step=None
) -> dict[str, jax.Array]:
  """The shared monitors: labeled train accuracy, accuracy of the unlabeled predictions against
  the hidden labels, for masked methods the fraction of unlabeled examples used and the accuracy
  of those, and the learning rate."""
  out = {}
  if logits_l is not None:
    out['monitor/train_acc'] = jnp.mean(jnp.argmax(logits_l, -1) == batch['y_l'])
  if logits_u is not None:
    out['monitor/pseudo_acc'] = known_label_accuracy(logits_u, batch['y_u'])
  if mask is not None:
    used = jnp.where(mask > 0, batch['y_u'], -1)
    out['monitor/mask_rate'] = jnp.mean(mask)
    out['monitor/masked_pseudo_acc'] = known_label_accuracy(logits_u, used)
  if lr is not None:
    out['monitor/lr'] = lr(step)
  return out
