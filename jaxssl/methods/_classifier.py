"""What the discriminative methods share: backbone, optimizer, EMA, augmentation and the step.

supervised, pseudo_label, pi_model, mean_teacher, vat, mixmatch, uda, fixmatch and flexmatch are
one file each that declares its knobs and an `objective`; everything else is here, so a change of
optimizer or backbone is one config key for all of them and a new method is one small file.

An objective is `(net, params, state, batch, key, step) -> (loss, Aux)`: it runs the network as it
likes (one forward over every view, or several), returns the batch-norm statistics of the pass
that should update them, metrics and any method state it updates (FlexMatch's per-example
pseudo-labels). `make` differentiates it, applies the optimizer, updates the EMA of the weights
(the evaluated model, and Mean Teacher's teacher) and adds `monitor/lr`.
"""

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxssl import models, optim
from jaxssl.data import augment, to_float
from jaxssl.errors import UserError
from jaxssl.methods import DataSpec, Method, known_label_accuracy
from jaxssl.models.convnets import SmallCNN, WideResNet
from jaxssl.models.mlp import Discriminator

BACKBONES = ('wrn28_2', 'wrn28_8', 'cnn', 'gan_mlp')


def defaults(**overrides) -> dict:
  """The shared knobs at FixMatch's reference recipe; methods override some and add their own."""
  knobs = dict(
    backbone='wrn28_2',  # wrn28_2 | wrn28_8 | cnn (28x28 digits) | gan_mlp (Improved-GAN's D)
    cnn_widths=(16, 32, 64),  # cnn: one 3x3 conv each; 2x2 max-pool after the first two
    cnn_head='gap',  # cnn: gap (global average pool) | flatten (a dense layer over the 7x7 map)
    bn_momentum=0.999,
    optimizer='sgd',  # sgd (Nesterov) | adam
    lr=0.03,
    momentum=0.9,
    adam_b1=0.9,
    adam_b2=0.999,
    lr_schedule='cosine',  # cosine: lr·cos(7πk/16K) | linear_decay | constant
    lr_decay_fraction=0.0,  # linear_decay: fraction of num_steps decaying to 0
    weight_decay=5e-4,  # on conv/dense kernels only
    weight_decay_mode='l2',  # l2: wd·w added to the gradient | decoupled: AdamW's
    ema_decay=0.999,  # EMA of the weights: the evaluated model (raw one also reported)
    flip=True,  # random horizontal flip in every augmentation; off for digits
    augment='auto',  # strong-view recipe: fixmatch | digits | auto (digits for mnist)
    pad_fraction=0.125,  # translation by up to this fraction (reflect-pad and crop)
    augment_labeled=True,  # weak augmentation of the labeled batch
    data_init=True,  # gan_mlp only: Improved-GAN's data-dependent init
    lambda_u=1.0,  # weight of the unlabeled loss
  )
  unknown = set(overrides) - set(knobs)
  if unknown:
    raise TypeError(f'not shared knobs: {sorted(unknown)}; add them in the method file')
  return {**knobs, **overrides}


def choice(config, key: str, options: tuple[str, ...]) -> None:
  """A UserError unless config[key] is one of options."""
  if config[key] not in options:
    raise UserError(f'config key {key!r} must be one of {", ".join(options)}; got {config[key]!r}')


class _GanMLP(nnx.Module):
  """Improved-GAN's discriminator as a classifier: Gaussian noise on in training mode only."""

  def __init__(self, data: DataSpec, *, rngs: nnx.Rngs):
    self.net = Discriminator(math.prod(data.image_shape), data.num_classes, rngs=rngs)

  def __call__(self, x, train: bool = False, key=None):
    return self.net(x, key if train else None)[0]

  def data_init(self, x, key):
    self.net.data_init(x, key)


def backbone(config, data: DataSpec, key: jax.Array) -> nnx.Module:
  choice(config, 'backbone', BACKBONES)
  rngs, c = nnx.Rngs(key), data.image_shape[-1]
  args = dict(bn_momentum=config.bn_momentum, rngs=rngs)
  if config.backbone.startswith('wrn28_'):
    k = int(config.backbone.removeprefix('wrn28_'))
    return WideResNet(c, data.num_classes, filters=16 * k, scales=3, **args)
  if config.backbone == 'cnn':
    choice(config, 'cnn_head', ('gap', 'flatten'))
    widths = tuple(config.cnn_widths)
    size = data.image_shape[0]
    return SmallCNN(
      c, data.num_classes, widths=widths, head=config.cnn_head, image_size=size, **args
    )
  return _GanMLP(data, rngs=rngs)


@dataclasses.dataclass(frozen=True)
class Net:
  """The backbone as a pure function of (params, rest): rest holds the batch-norm statistics."""

  graph: Any

  def __call__(self, params, rest, images, *, train: bool, key=None):
    """Logits of float images in [0, 1], and the rest updated by this pass (train mode)."""
    return models.apply(self.graph, params, rest, images, train, key)


def _kernels(params):
  """Conv and dense kernels: the only weights FixMatch decays (not BN, not biases)."""
  return jax.tree_util.tree_map_with_path(
    lambda path, _: any(getattr(p, 'key', None) in ('kernel', 'v') for p in path), params
  )


def optimizer(config):
  """(optax transformation, lr schedule) from the config."""
  for key, options in (
    ('optimizer', ('sgd', 'adam')),
    ('lr_schedule', ('cosine', 'linear_decay', 'constant')),
    ('weight_decay_mode', ('l2', 'decoupled')),
  ):
    choice(config, key, options)
  n = config.num_steps
  if config.lr_schedule == 'cosine':
    lr = lambda step: config.lr * jnp.cos(7 * jnp.pi * step / (16 * n))
  elif config.lr_schedule == 'linear_decay':
    lr = optim.constant_then_linear_decay(config.lr, n, config.lr_decay_fraction)
  else:
    lr = optax.constant_schedule(config.lr)
  if config.optimizer == 'sgd':
    scale = optax.trace(decay=config.momentum, nesterov=config.momentum > 0)
  else:
    scale = optax.scale_by_adam(b1=config.adam_b1, b2=config.adam_b2)
  decay = optax.add_decayed_weights(config.weight_decay, _kernels)
  # l2: wd·w joins the gradient before momentum/Adam, as FixMatch's L2 loss; decoupled: after,
  # as AdamW (MixMatch's w <- w - lr·wd·w).
  chain = (decay, scale) if config.weight_decay_mode == 'l2' else (scale, decay)
  return optax.chain(*chain, optax.scale_by_learning_rate(lr)), lr


class Aux(NamedTuple):
  rest: Any  # batch-norm statistics after the pass that should update them
  metrics: dict[str, jax.Array]
  updates: dict[str, Any] = {}  # method state entries to replace (stop-gradient values)


Objective = Callable[..., tuple[jax.Array, Aux]]


DIGIT_DATASETS = ('mnist',)


def recipe(config) -> augment.Recipe:
  """The augmentation recipe: `augment`, where 'auto' keys it on the dataset."""
  choice(config, 'augment', ('auto', *augment.RECIPES))
  name = config.augment
  if name == 'auto':
    name = 'digits' if config.dataset in DIGIT_DATASETS else 'fixmatch'
  return augment.RECIPES[name]


def weak(config, images: jax.Array, key: jax.Array) -> jax.Array:
  return augment.weak(
    to_float(images), key, flip=config.flip, pad_fraction=config.pad_fraction, recipe=recipe(config)
  )


def strong(config, images: jax.Array, key: jax.Array, **kwargs) -> jax.Array:
  return augment.strong(
    to_float(images),
    key,
    flip=config.flip,
    pad_fraction=config.pad_fraction,
    recipe=recipe(config),
    **kwargs,
  )


def labeled_images(config, batch, key) -> jax.Array:
  x = batch['x_l']
  return weak(config, x, key) if config.augment_labeled else to_float(x)


def cross_entropy(logits, labels) -> jax.Array:
  """Per-example cross-entropy against integer labels or a distribution over classes."""
  if labels.ndim == logits.ndim:
    return optax.softmax_cross_entropy(logits, labels)
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def ramp(step, ramp_steps: int, kind: str = 'linear') -> jax.Array:
  """Weight ramp-up from 0 to 1 over the first `ramp_steps` steps, whatever the run's length.

  linear (pseudo-labeling, MixMatch); sigmoid exp(-5(1-t)^2) (Π-model, Mean Teacher).
  """
  if ramp_steps <= 0:
    return jnp.ones(())
  t = jnp.clip(step / ramp_steps, 0.0, 1.0)
  return t if kind == 'linear' else jnp.exp(-5.0 * (1.0 - t) ** 2)


def split_logits(logits, *sizes):
  """Splits the logits of one concatenated forward back into its parts."""
  bounds = [sum(sizes[: i + 1]) for i in range(len(sizes) - 1)]
  return jnp.split(logits, bounds)


def make(
  config,
  data: DataSpec,
  objective: Objective,
  *,
  unlabeled_views: tuple[str, ...],
  init_extra: Callable[[], dict] = dict,
) -> Method:
  new = lambda key: backbone(config, data, key)
  net = Net(models.split(nnx.eval_shape(lambda: new(jax.random.key(0))))[0])
  opt, lr = optimizer(config)

  def init(key, init_images):
    key, k_init = jax.random.split(key)
    module = new(key)
    if config.data_init and hasattr(module, 'data_init'):
      module.data_init(to_float(init_images), k_init)
    _, params, rest = models.split(module)
    return dict(params=params, rest=rest, opt=opt.init(params), ema=params, **init_extra())

  def train_step(state, batch, key, step):
    loss_fn = lambda params: objective(net, params, state, batch, key, step)
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state['params'])
    updates, opt_state = opt.update(grads, state['opt'], state['params'])
    params = optax.apply_updates(state['params'], updates)
    # Mean Teacher's warm-up of the decay, min(decay, 1 - 1/(t+1)): the average never holds the
    # random init, so short runs evaluate a fair EMA; over long runs it is FixMatch's plain EMA.
    decay = jnp.minimum(config.ema_decay, 1.0 - 1.0 / (step + 1.0))
    ema = optax.incremental_update(params, state['ema'], 1.0 - decay)
    new_state = dict(state, params=params, rest=aux.rest, opt=opt_state, ema=ema, **aux.updates)
    return new_state, {'loss/total': loss, **aux.metrics, 'monitor/lr': lr(step)}

  evaluate = lambda name: (
    lambda state, x: net(state[name], state['rest'], to_float(x), train=False)[0]
  )
  return Method(
    init=init,
    train_step=train_step,
    predict=evaluate('ema'),
    extra_predictors={'raw': evaluate('params')},
    unlabeled_views=unlabeled_views,
  )


def forward_all(net, params, state, parts, *, train=True, key=None):
  """One forward over the concatenated parts, so batch norm sees them together; logits per part."""
  logits, rest = net(params, state['rest'], jnp.concatenate(parts), train=train, key=key)
  return split_logits(logits, *(len(p) for p in parts)), rest


def combine(rest, sup, unsup, weight, monitors, **metrics) -> tuple[jax.Array, Aux]:
  """sup + weight·unsup, and the metrics every method logs."""
  metrics = {
    'loss/sup': sup,
    'loss/unsup': unsup,
    'monitor/unsup_weight': weight,
    **monitors,
    **metrics,
  }
  return sup + weight * unsup, Aux(rest, metrics)


def monitors(batch, logits_l, logits_u, mask=None) -> dict[str, jax.Array]:
  """Labeled train accuracy; accuracy of the unlabeled predictions against the hidden labels; and
  for masked methods the fraction of unlabeled examples used and the accuracy of those."""
  out = {
    'monitor/train_acc': jnp.mean(jnp.argmax(logits_l, -1) == batch['y_l']),
    'monitor/pseudo_acc': known_label_accuracy(logits_u, batch['y_u']),
  }
  if mask is not None:
    used = jnp.where(mask > 0, batch['y_u'], -1)
    out['monitor/mask_rate'] = jnp.mean(mask)
    out['monitor/masked_pseudo_acc'] = known_label_accuracy(logits_u, used)
  return out
