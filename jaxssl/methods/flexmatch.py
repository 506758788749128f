"""FlexMatch (Zhang et al. 2021): FixMatch with curriculum pseudo-labeling (class-wise thresholds).

Every unlabeled example remembers the class it was last confidently (≥ τ) predicted as. The
learning effect σ(c) of class c is how many examples hold c; β(c) = σ(c) / max(max_c σ, #unused)
with threshold warm-up (β(c) = σ(c) / max_c σ without); the threshold of class c is
τ·M(β(c)) with the convex mapping M(x) = x / (2 − x). Early on every β is 0, so every
pseudo-label counts; classes the model has learned get thresholds near τ. As TorchSSL/USB, with
one deviation for runs that see the pool only a few times (`threshold_warmup`):

- 'pool' (TorchSSL/USB): #unused counts every example not yet confidently predicted, including
  those the run has never drawn. Over 2^20 steps the pool is drawn ~9,000 times, so never-drawn
  examples vanish within the first pass; in a run of a few passes they stay a large part of
  #unused and hold every threshold near 0 (1,000 steps x 96 images leave ~20 % of MNIST undrawn).
- 'seen' (default): #unused counts only examples drawn at least once. It equals 'pool' from the
  first full pass on, so long runs are unchanged.
- 'off': no warm-up.
TorchSSL/USB also skip the threshold update while one label holds every example
(`max(counter) < N`); here β follows the counts then too. The two differ only if every example
of the pool is confidently one class (all unused at the start gives β = 0 in both).
"""

import jax
import jax.numpy as jnp

from jaxssl.methods import DataSpec, Method, fixmatch
from jaxssl.methods import _classifier as C


def defaults() -> dict:
  return fixmatch.defaults() | dict(threshold_warmup='seen')  # seen | pool | off


WARMUPS = ('seen', 'pool', 'off')
NEVER_DRAWN, UNCONFIDENT = -2, -1  # the values of `selected` that are not a class


def class_thresholds(selected: jax.Array, num_classes: int, threshold: float, warmup: str):
  """Per-class thresholds from the remembered labels: a class, or NEVER_DRAWN / UNCONFIDENT."""
  counts = jnp.bincount(selected + 2, length=num_classes + 2)
  never, unconfident, per_class = counts[0], counts[1], counts[2:]
  unused = {'pool': never + unconfident, 'seen': unconfident, 'off': 0}[warmup]
  beta = per_class / jnp.maximum(jnp.maximum(per_class.max(), unused), 1)
  return threshold * beta / (2.0 - beta)


def threshold_monitors(thresholds: jax.Array) -> dict[str, jax.Array]:
  """Lowest, mean and highest class threshold, and each one for up to 10 classes."""
  out = {
    'monitor/threshold_min': thresholds.min(),
    'monitor/threshold_mean': thresholds.mean(),
    'monitor/threshold_max': thresholds.max(),
  }
  if len(thresholds) <= 10:
    out |= {f'monitor/threshold_class_{c}': t for c, t in enumerate(thresholds)}
  return out


def make(config, data: DataSpec) -> Method:
  C.choice(config, 'threshold_warmup', WARMUPS)

  def mask_fn(state, probs_w, batch, config, threshold):
    thresholds = class_thresholds(
      state['selected'], data.num_classes, threshold, config.threshold_warmup
    )
    conf, pred = jnp.max(probs_w, -1), jnp.argmax(probs_w, -1)
    mask = (conf >= thresholds[pred]).astype(jnp.float32)
    old = jnp.maximum(state['selected'][batch['i_u']], UNCONFIDENT)  # drawn now
    selected = state['selected'].at[batch['i_u']].set(jnp.where(conf >= threshold, pred, old))
    return mask, {'selected': selected}, threshold_monitors(thresholds)

  return fixmatch.make_family(
    config,
    data,
    fixmatch.thresholded(config, mask_fn),
    init_extra=lambda: (
      fixmatch.init_state(data) | {'selected': jnp.full(data.num_unlabeled, NEVER_DRAWN, jnp.int32)}
    ),
  )
