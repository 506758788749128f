"""AdaMatch (Berthelot et al. 2022, arXiv 2106.04732) in its semi-supervised form: FixMatch with
distribution alignment towards the labeled predictions and a threshold relative to the labeled
confidence, as USB (semilearn/algorithms/adamatch) trains it.

Alignment (USB's DistAlignEMAHook, target 'model'): the weak view's probabilities are scaled by
p_target / p_model, both running means (`ema_p`): p_target of the labeled batch's predictions
(started uniform), p_model of the unlabeled ones (started at the first batch's mean). Relative
threshold: a pseudo-label counts if its aligned confidence is at least τ times the labeled
batch's mean confidence, τ = `threshold` (0.95). Early on, when the model is unsure of the
labeled images too, the threshold is low; it rises towards τ as they are fitted.

Deviation from the paper, as USB: the unlabeled loss weight is constant (the paper warms it up
with 0.5 − cos(min(π, 2πt/T))/2) and the labeled batch's predictions come from its one
(weakly augmented) view, not from a separate weak and strong view of the labeled images.
"""

import jax.numpy as jnp

from jaxssl.methods import DataSpec, Method, fixmatch


def defaults() -> dict:
  unused = ('dist_align', 'dist_align_momentum')  # always aligned, with its own target
  base = {k: v for k, v in fixmatch.defaults().items() if k not in unused}
  return base | dict(ema_p=0.999)  # threshold: τ, relative to the labeled confidence


def init_state(num_classes: int) -> dict:
  uniform = jnp.full(num_classes, 1.0 / num_classes, jnp.float32)
  return {'p_model': uniform, 'p_target': uniform}


def relative_mask(probs_u, probs_l, threshold: float):
  """(mask, cut-off): confidence ≥ τ · the labeled batch's mean confidence."""
  cutoff = threshold * jnp.max(probs_l, -1).mean()
  return (jnp.max(probs_u, -1) >= cutoff).astype(jnp.float32), cutoff


def pseudo_labels(config):
  def fn(state, probs_w, probs_l, batch, step, hp):
    m = config.ema_p
    p_target = m * state['p_target'] + (1 - m) * probs_l.mean(0)
    aligned, p_model = fixmatch.ema_alignment(state['p_model'], probs_w, p_target, step, m)
    mask, cutoff = relative_mask(aligned, probs_l, hp['threshold'])
    updates = {'p_model': p_model, 'p_target': p_target}
    return fixmatch.Pseudo(jnp.argmax(aligned, -1), mask, updates, {'monitor/cutoff': cutoff})

  return fn


def make(config, data: DataSpec) -> Method:
  return fixmatch.make_family(
    config, data, pseudo_labels(config), init_extra=lambda: init_state(data.num_classes)
  )
