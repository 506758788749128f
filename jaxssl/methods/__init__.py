"""The method interface, and methods found by name: `jaxssl/methods/<name>.py`, one file each.

A method file defines `defaults() -> dict` (every knob it reads, with its default) and
`make(config, data: DataSpec) -> Method`. The trainer never branches on the name.
"""

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax

from jaxssl.errors import UserError

State = Any  # a pytree of arrays


class DataSpec(NamedTuple):
  """What a method may know about its data before seeing any."""

  image_shape: tuple[int, int, int]  # (H, W, C)
  num_classes: int
  num_unlabeled: int  # size of the unlabeled pool (the whole train split, plus extra images)
  num_labeled: int  # size of the labeled set (batch['i_l'] indexes it)


# x_l, y_l, i_l (labeled; i_l: position in the labeled set); x_u, y_u, i_u (unlabeled; y_u
# monitors only; i_u: position in the unlabeled pool)
Batch = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Method:
  """Pure functions the trainer compiles. Images arrive as uint8 NHWC; methods scale them."""

  # (key, init_images) -> state. init_images are training images for data-dependent init.
  init: Callable[[jax.Array, jax.Array], State]
  # (state, batch, key, step, hp) -> (state, metrics). Pure: jitted once, sharded over the
  # batch. hp: {name: float32 scalar} for each of `hparams`, traced.
  train_step: Callable[..., tuple[State, dict[str, jax.Array]]]
  # (state, images) -> logits of the model the method reports (EMA, teacher, q(y|x), ...).
  predict: Callable[[State, jax.Array], jax.Array]
  # Further models to evaluate, e.g. {'raw': the non-averaged weights}.
  extra_predictors: Mapping[str, Callable[[State, jax.Array], jax.Array]] = dataclasses.field(
    default_factory=dict
  )
  # (state, images, keys) -> {name: one value per image}, averaged over the test set and logged
  # as eval/test/<name>, e.g. a VAE's negative bound. keys: one per image, from its test index.
  eval_metrics: Callable[[State, jax.Array, jax.Array], dict[str, jax.Array]] | None = None
  # (state, key, n) -> n images in [0, 1] for a PNG grid (generative methods), else None.
  sample: Callable[[State, jax.Array, int], jax.Array] | None = None
  # Unlabeled views the method builds from x_u inside its step: () means it needs no unlabeled
  # data at all, so none is loaded or transferred. ('raw',) GAN/VAE, ('weak', 'strong') FixMatch.
  unlabeled_views: tuple[str, ...] = ('raw',)
  # Knobs the step reads as inputs rather than as constants of its program, {name: the config's
  # value}: `Run.with_hparams` (a test's λu = 0) steps the same compiled program with others.
  # Only knobs that leave the program's structure alone (loss weights, thresholds) belong here.
  hparams: Mapping[str, float] = dataclasses.field(default_factory=dict)


def available() -> list[str]:
  return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith('_'))


def get(name: str):
  """The module of method `name`."""
  if name not in available():
    raise UserError(f'unknown method {name!r}; available: {", ".join(available())}')
  return importlib.import_module(f'{__name__}.{name}')
