"""FixMatch (Sohn et al. 2020) with the reference recipe of google-research/fixmatch.

Hard pseudo-labels from the stop-gradient prediction on a weakly augmented view, kept where its
confidence is at least τ = 0.95, are the cross-entropy targets of a strongly augmented view
(RandAugment + Cutout). The labeled batch (B = 64) and both views of the μB = 448 unlabeled images
go through ONE forward pass, so batch norm sees all 960 images together. λu = 1; SGD Nesterov 0.9,
lr 0.03·cos(7πk/16K); L2 weight decay 5e-4 on kernels only; the EMA (0.999) is evaluated.
"""

import jax
import jax.numpy as jnp

from jaxssl.methods import DataSpec, Method
from jaxssl.methods import _classifier as C


def defaults() -> dict:
  return C.defaults() | dict(
    threshold=0.95,  # τ: confidence of the weak view needed for a pseudo-label
    randaugment_ops=2,
    op_prob=0.5,  # 0.5: each RandAugment op applied with p = 0.5 (official code); 1.0: paper
    cutout_size=0.5,  # side as a fraction of the image: 16x16 at 32x32
  )


def confidence_mask(state, probs_w, batch, config):
  """FixMatch's fixed threshold: (mask, method state updates)."""
  return (jnp.max(probs_w, -1) >= config.threshold).astype(jnp.float32), {}


def weak_strong_forward(config, net, params, state, batch, key):
  """One forward over the labeled batch and a weak and a strong view of the unlabeled one:
  ((logits_l, logits_weak, logits_strong), batch-norm statistics)."""
  k_l, k_w, k_s = jax.random.split(key, 3)
  x_l = C.labeled_images(config, batch, k_l)
  u_w = C.weak(config, batch['x_u'], k_w)
  u_s = C.strong(
    config,
    batch['x_u'],
    k_s,
    num_ops=config.randaugment_ops,
    op_prob=config.op_prob,
    cutout_size=config.cutout_size,
  )
  return C.forward_all(net, params, state, (x_l, u_w, u_s))


def objective(config, mask_fn=confidence_mask):
  """The FixMatch loss; `mask_fn(state, probs_w, batch, config)` decides which pseudo-labels count
  (FlexMatch passes its class-wise thresholds)."""

  def fn(net, params, state, batch, key, step):
    (logits_l, logits_w, logits_s), rest = weak_strong_forward(
      config, net, params, state, batch, key
    )
    sup = C.cross_entropy(logits_l, batch['y_l']).mean()
    logits_w = jax.lax.stop_gradient(logits_w)
    mask, updates = mask_fn(state, jax.nn.softmax(logits_w), batch, config)
    unsup = jnp.mean(C.cross_entropy(logits_s, jnp.argmax(logits_w, -1)) * mask)
    monitors = C.monitors(batch, logits_l, logits_w, mask)
    loss, aux = C.combine(rest, sup, unsup, config.lambda_u, monitors)
    return loss, aux._replace(updates=updates)

  return fn


def make(config, data: DataSpec) -> Method:
  return C.make(config, data, objective(config), unlabeled_views=('weak', 'strong'))
