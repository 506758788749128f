"""UDA (Xie et al. 2020): consistency of a strong view with the sharpened prediction on a weak one.

Soft targets softmax(logits_weak / T) with T = 0.4, used only where the weak prediction's
confidence is at least 0.8, are the cross-entropy (KL up to a constant) targets of the strongly
augmented view; λu = 1. FixMatch's optional distribution alignment applies before both. Optional
training-signal annealing (TSA) drops labeled examples the model
already predicts with probability above η_t = α_t(1 − 1/K) + 1/K, and averages the labeled loss
over the examples it keeps, as the authors' code does (google-research/uda: the masked sum over
max(Σ mask, 1)); USB's UDA averages over the whole batch. Values as USB's UDA config.
`strong_augment='ctaugment'` swaps RandAugment for CTAugment, as in FixMatch.
"""

import jax
import jax.numpy as jnp

from jaxssl import core
from jaxssl.methods import DataSpec, Method, fixmatch, mixmatch
from jaxssl.methods import _classifier as C

TSA = ('none', 'linear', 'log', 'exp')


def defaults() -> dict:
  return fixmatch.defaults() | dict(
    threshold=0.8,  # confidence mask of the weak view
    temperature=0.4,  # sharpening of the soft targets
    tsa='none',  # none | linear | log | exp
  )


def tsa_threshold(schedule: str, step, num_steps: int, num_classes: int) -> jax.Array:
  t = step / num_steps
  alpha = {
    'none': lambda: jnp.ones(()),
    'linear': lambda: t,
    'log': lambda: 1.0 - jnp.exp(-5.0 * t),
    'exp': lambda: jnp.exp(5.0 * (t - 1.0)),
  }[schedule]()
  return alpha * (1.0 - 1.0 / num_classes) + 1.0 / num_classes


def make(config, data: DataSpec) -> Method:
  C.choice(config, 'tsa', TSA)
  augment = fixmatch.augment_state(config)  # checks strong_augment before any compute

  def objective(net, params, state, batch, key, step, hp):
    x_l, u_w, u_s = fixmatch.views(config, state, batch, key)
    (logits_l, logits_w, logits_s), rest = C.forward_all(net, params, state, (x_l, u_w, u_s))
    ce_l = C.cross_entropy(logits_l, batch['y_l'])
    p_true = jnp.exp(-jax.lax.stop_gradient(ce_l))
    keep = p_true <= tsa_threshold(config.tsa, step, config.num_steps, data.num_classes)
    sup = jnp.sum(ce_l * keep) / jnp.maximum(keep.sum(), 1)
    probs_w = jax.nn.softmax(jax.lax.stop_gradient(logits_w))
    updates, extra = {}, {}
    if config.dist_align:
      probs_w, updates, extra = fixmatch.align(state, probs_w, step, config)
    mask, _, _ = fixmatch.confidence_mask(state, probs_w, batch, config, hp['threshold'])
    targets = mixmatch.sharpen(probs_w, config.temperature)  # = softmax(logits_w / T) unaligned
    unsup = jnp.mean(C.cross_entropy(logits_s, targets) * mask)
    more, cta_monitors = fixmatch.augment_updates(config, net, state, x_l, batch, key)
    monitors = core.monitors(batch, logits_l, jnp.log(probs_w), mask) | extra | cta_monitors
    loss, aux = C.combine(
      rest, sup, unsup, hp['lambda_u'], monitors, **{'monitor/tsa_kept': keep.mean()}
    )
    return loss, aux._replace(updates=updates | more)

  return C.make(
    config,
    data,
    objective,
    unlabeled_views=('weak', 'strong'),
    init_extra=lambda: fixmatch.init_state(data) | augment,
    step_inputs=('lambda_u', 'threshold'),
  )
