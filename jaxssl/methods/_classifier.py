"""What the discriminative methods share: backbone, optimizer, EMA, augmentation and the step.

supervised, pseudo_label, pi_model, mean_teacher, vat, mixmatch, uda, fixmatch and flexmatch are
one file each that declares its knobs and an `objective`; everything else is here, so a change of
optimizer or backbone is one config key for all of them and a new method is one small file.

An objective is `(net, params, state, batch, key, step, hp) -> (loss, Aux)`, where hp holds the
knobs it declares (`make`'s `step_inputs`: λu unless told otherwise; loss weights and confidence
thresholds) as traced inputs (`Method.hparams`), so `Run.with_hparams` steps the same compiled
program with other values. Knobs that decide the program's structure (ReMixMatch's λrot > 0 adds
a head) stay constants. It runs the network as it
likes (one forward over every view, or several), returns the batch-norm statistics of the pass
that should update them, metrics and any method state it updates (FlexMatch's per-example
pseudo-labels). `make` takes one `core.update` of the classifier's model on it: the optimizer
step and the EMA of the weights (the evaluated model, and Mean Teacher's teacher). The state is
the classifier's `core.Model` (params, rest, opt, avg) plus the method's own entries.
"""

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxssl import core
from jaxssl.data import augment, to_float
from jaxssl.errors import UserError
from jaxssl.methods import DataSpec, Method
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
    compute_dtype='float32',  # float32 | bfloat16: the conv backbones' convolutions/activations
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


class _WithHeads(nnx.Module):
  """A backbone and more heads on the features its classifier reads (SimMatch's projection,
  ReMixMatch's rotation classifier). Called plainly it is the backbone."""

  def __init__(self, backbone: nnx.Module, heads: dict):
    self.backbone, self.heads = backbone, nnx.Dict(heads)

  def __call__(self, x, train: bool = False, key=None):
    return self.backbone(x, train, key)

  def with_heads(self, x, train: bool = False, key=None):
    """(logits, {head name: its output})."""
    feat = self.backbone.features(x, train)
    return self.backbone.head(feat), {name: head(feat) for name, head in self.heads.items()}


COMPUTE_DTYPES = ('float32', 'bfloat16')


def backbone(config, data: DataSpec, key: jax.Array) -> nnx.Module:
  choice(config, 'backbone', BACKBONES)
  choice(config, 'compute_dtype', COMPUTE_DTYPES)
  rngs, c = nnx.Rngs(key), data.image_shape[-1]
  dtype = jnp.bfloat16 if config.compute_dtype == 'bfloat16' else None
  if dtype is not None and config.backbone == 'gan_mlp':
    raise UserError('compute_dtype=bfloat16 is for the conv backbones (wrn28_*, cnn)')
  args = dict(bn_momentum=config.bn_momentum, rngs=rngs, dtype=dtype)
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

  def __call__(self, params, rest, images, *, train: bool, key=None, method='__call__'):
    """Logits of float images in [0, 1] (or what `method` returns: 'with_heads'), and the rest
    updated by this pass (train mode)."""
    return core.apply(self.graph, params, rest, images, train, key, method=method)


def optimizer(config):
  """(optax transformation, lr schedule) from the shared knobs."""
  choice(config, 'optimizer', core.OPTIMIZERS)
  choice(config, 'lr_schedule', core.SCHEDULES)
  choice(config, 'weight_decay_mode', core.WEIGHT_DECAY)
  return core.optimizer(
    config.optimizer,
    lr=config.lr,
    num_steps=config.num_steps,
    schedule_name=config.lr_schedule,
    decay_fraction=config.lr_decay_fraction,
    momentum=config.momentum,
    b1=config.adam_b1,
    b2=config.adam_b2,
    weight_decay=config.weight_decay,
    weight_decay_mode=config.weight_decay_mode,
  )


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
  heads: Callable[[int, nnx.Rngs], dict] | None = None,
  step_inputs: tuple[str, ...] = ('lambda_u',),
) -> Method:
  """`heads(num_features, rngs) -> {name: module}` adds heads on the backbone's features, run
  by `net(..., method='with_heads')` (`forward_heads`). `step_inputs`: the knobs (loss weights,
  confidence thresholds) that the objective reads from hp as inputs of the step
  (`Method.hparams`)."""

  def new(key):
    module = backbone(config, data, key)
    if heads is None:
      return module
    if not hasattr(module, 'features'):
      raise UserError(
        f'{config.method} needs a backbone with a feature layer (wrn28_2, wrn28_8, cnn); '
        f'got {config.backbone!r}'
      )
    return _WithHeads(module, heads(module.num_features, nnx.Rngs(jax.random.fold_in(key, 1))))

  net = Net(core.graphdef(new))
  tx, lr = optimizer(config)

  def init(key, init_images):
    key, k_init = jax.random.split(key)
    module = new(key)
    if config.data_init and hasattr(module, 'data_init'):
      module.data_init(to_float(init_images), k_init)
    return core.model(module, tx, average='ema') | init_extra()

  def train_step(state, batch, key, step, hp):
    def loss_fn(params):
      loss, aux = objective(net, params, state, batch, key, step, hp)
      return loss, (aux.rest, aux)

    state, loss, aux = core.update(state, tx, loss_fn, step, config.ema_decay)
    metrics = {'loss/total': loss, **aux.metrics, 'monitor/lr': lr(step)}
    return dict(state, **aux.updates), metrics

  evaluate = lambda name: (
    lambda state, x: net(state[name], state['rest'], to_float(x), train=False)[0]
  )
  return Method(
    init=init,
    train_step=train_step,
    predict=evaluate('avg'),
    extra_predictors={'raw': evaluate('params')},
    unlabeled_views=unlabeled_views,
    hparams={name: config[name] for name in step_inputs},
  )


def forward_all(net, params, state, parts, *, train=True, key=None):
  """One forward over the concatenated parts, so batch norm sees them together; logits per part."""
  logits, rest = net(params, state['rest'], jnp.concatenate(parts), train=train, key=key)
  return split_logits(logits, *(len(p) for p in parts)), rest


def forward_heads(net, params, state, parts, *, train=True):
  """forward_all through the extra heads: (logits per part, {head: outputs per part}, rest)."""
  (logits, outs), rest = net(
    params, state['rest'], jnp.concatenate(parts), train=train, method='with_heads'
  )
  sizes = [len(p) for p in parts]
  split = {name: split_logits(out, *sizes) for name, out in outs.items()}
  return split_logits(logits, *sizes), split, rest


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
