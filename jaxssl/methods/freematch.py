"""FreeMatch (Wang et al. 2023, arXiv 2205.07246): FixMatch with self-adaptive thresholds and a
fairness loss, as USB (semilearn/algorithms/freematch) trains it.

Self-adaptive thresholding (SAT): EMAs (momentum `sat_momentum`, 0.999) of the batch's mean
confidence τ_t, of its mean class probabilities p̃_t and of the histogram h̃_t of its predicted
classes; the threshold of class c is τ_t · p̃_t(c) / max_c p̃_t. The EMAs take the current weak
batch before the mask is drawn (USB's order). A class the model rarely predicts gets a lower
threshold, and while the model is unsure (τ_t low) most pseudo-labels count.

Fairness loss (weight `fairness_weight`, USB's ent_loss_ratio 0.01): over the pseudo-labeled
strong views, −H(SumNorm(p̃_t / h̃_t), SumNorm(p̄ / h̄)), p̄ and h̄ their mean prediction and the
histogram of their predicted classes (both normalised by that histogram, treating 1/0 as 0), so
the strong views' predictions spread over the classes. Zero when no pseudo-label is kept.

Deviation, switchable: the EMAs start at 1/C (`sat_init='uniform'`: the paper's τ_0 = p̃_0 =
1/C); USB's code starts them at 1 (`'ones'`), which keeps τ_t near 1 for the first thousands of
steps (0.999^1500 = 0.22) and so masks nearly everything in a run of a few thousand steps.
"""

import jax
import jax.numpy as jnp

from jaxssl.methods import DataSpec, Method, fixmatch, flexmatch
from jaxssl.methods import _classifier as C


def defaults() -> dict:
  unused = ('threshold', 'dist_align', 'dist_align_momentum')  # SAT replaces them
  base = {k: v for k, v in fixmatch.defaults().items() if k not in unused}
  return base | dict(
    sat_momentum=0.999,  # USB's ema_p
    sat_init='uniform',  # uniform (paper: 1/C) | ones (USB's code)
    fairness_weight=0.01,  # USB's ent_loss_ratio
  )


SAT_INITS = ('uniform', 'ones')


def init_state(num_classes: int, how: str) -> dict:
  value = 1.0 / num_classes if how == 'uniform' else 1.0
  # float32, not weakly typed: the updated EMAs must have the type of the initial ones (one trace)
  return {
    'time_p': jnp.asarray(value, jnp.float32),
    'p_model': jnp.full(num_classes, value, jnp.float32),
    'label_hist': jnp.full(num_classes, value, jnp.float32),
  }


def self_adaptive(state, probs_w, momentum: float):
  """(updated EMAs, class thresholds τ_t · MaxNorm(p̃_t)) from the weak view's probabilities."""
  m, num_classes = momentum, probs_w.shape[-1]
  hist = jnp.bincount(jnp.argmax(probs_w, -1), length=num_classes) / probs_w.shape[0]
  new = {
    'time_p': m * state['time_p'] + (1 - m) * jnp.max(probs_w, -1).mean(),
    'p_model': m * state['p_model'] + (1 - m) * probs_w.mean(0),
    'label_hist': m * state['label_hist'] + (1 - m) * hist,
  }
  return new, new['time_p'] * new['p_model'] / new['p_model'].max()


def _inverse_or_zero(x):
  return jnp.where(x > 0, 1.0 / jnp.where(x > 0, x, 1.0), 0.0)


def fairness_loss(mask, logits_s, p_model, label_hist):
  """USB's entropy_loss on the kept strong views: Σ_c SumNorm(p̃/h̃)(c) · log SumNorm(p̄/h̄)(c)."""
  num_classes = logits_s.shape[-1]
  probs_s = jax.nn.softmax(logits_s)
  kept = jnp.maximum(mask.sum(), 1.0)
  hist_s = (jax.nn.one_hot(jnp.argmax(probs_s, -1), num_classes) * mask[:, None]).sum(0) / kept
  target = p_model * jax.lax.stop_gradient(_inverse_or_zero(label_hist))
  target = target / target.sum()
  mean_s = (probs_s * mask[:, None]).sum(0) / kept
  mean_s = mean_s * jax.lax.stop_gradient(_inverse_or_zero(hist_s))
  mean_s = mean_s / jnp.maximum(mean_s.sum(), 1e-12)
  loss = jnp.sum(target * jnp.log(mean_s + 1e-12))
  return jnp.where(mask.sum() > 0, loss, 0.0)


def pseudo_labels(config):
  """SAT: the EMAs take the weak batch first (USB's order), then the class thresholds mask it."""

  def fn(state, probs_w, probs_l, batch, step, hp):
    sat, thresholds = self_adaptive(state, probs_w, config.sat_momentum)
    conf, pred = jnp.max(probs_w, -1), jnp.argmax(probs_w, -1)
    mask = (conf >= thresholds[pred]).astype(jnp.float32)
    monitors = {'monitor/time_p': sat['time_p']} | flexmatch.threshold_monitors(thresholds)
    return fixmatch.Pseudo(pred, mask, sat, monitors)

  return fn


def fairness(config):
  def fn(pseudo, logits_s):
    sat = pseudo.updates
    fair = fairness_loss(pseudo.mask, logits_s, sat['p_model'], sat['label_hist'])
    return config.fairness_weight * fair, {'loss/fairness': fair}

  return fn


def make(config, data: DataSpec) -> Method:
  C.choice(config, 'sat_init', SAT_INITS)
  return fixmatch.make_family(
    config,
    data,
    pseudo_labels(config),
    fairness(config),
    init_extra=lambda: init_state(data.num_classes, config.sat_init),
  )
