"""FlexMatch (Zhang et al. 2021): FixMatch with curriculum pseudo-labeling (class-wise thresholds).

Every unlabeled example remembers the class it was last confidently (≥ τ) predicted as. The
learning effect σ(c) of class c is how many examples hold c; β(c) = σ(c) / max(max_c σ, #unused)
with threshold warm-up (β(c) = σ(c) / max_c σ without); the threshold of class c is
τ·M(β(c)) with the convex mapping M(x) = x / (2 − x). Early on every β is 0, so every
pseudo-label counts; classes the model has learned get thresholds near τ. As TorchSSL/USB.
"""

import jax
import jax.numpy as jnp

from jaxssl.methods import DataSpec, Method, fixmatch
from jaxssl.methods import _classifier as C


def defaults() -> dict:
  return fixmatch.defaults() | dict(threshold_warmup=True)


def class_thresholds(selected: jax.Array, num_classes: int, threshold: float, warmup: bool):
  """Per-class thresholds from the remembered labels (-1: not yet confidently predicted)."""
  counts = jnp.bincount(selected + 1, length=num_classes + 1)
  unused, per_class = counts[0], counts[1:]
  denominator = jnp.maximum(per_class.max(), unused) if warmup else per_class.max()
  beta = jnp.where(unused < selected.shape[0], per_class / jnp.maximum(denominator, 1), 0.0)
  return threshold * beta / (2.0 - beta)


def make(config, data: DataSpec) -> Method:
  def mask_fn(state, probs_w, batch, config):
    thresholds = class_thresholds(
      state['selected'], data.num_classes, config.threshold, config.threshold_warmup
    )
    conf, pred = jnp.max(probs_w, -1), jnp.argmax(probs_w, -1)
    mask = (conf >= thresholds[pred]).astype(jnp.float32)
    old = state['selected'][batch['i_u']]
    selected = (
      state['selected'].at[batch['i_u']].set(jnp.where(conf >= config.threshold, pred, old))
    )
    return mask, {'selected': selected}

  return C.make(
    config,
    data,
    fixmatch.objective(config, mask_fn),
    unlabeled_views=('weak', 'strong'),
    init_extra=lambda: {'selected': -jnp.ones(data.num_unlabeled, jnp.int32)},
  )
