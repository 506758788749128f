"""FixMatch (Sohn et al. 2020) with the reference recipe of google-research/fixmatch.

Hard pseudo-labels from the stop-gradient prediction on a weakly augmented view, kept where its
confidence is at least τ = 0.95, are the cross-entropy targets of a strongly augmented view
(RandAugment + Cutout). The labeled batch (B = 64) and both views of the μB = 448 unlabeled images
go through ONE forward pass, so batch norm sees all 960 images together. λu = 1; SGD Nesterov 0.9,
lr 0.03·cos(7πk/16K); L2 weight decay 5e-4 on kernels only; the EMA (0.999) is evaluated.

Option, off by default: distribution alignment (`dist_align`, ReMixMatch: Berthelot et al. 2020;
AdaMatch), which scales the weak view's class probabilities by p_target / p_model before the
pseudo-label and the threshold are taken, where p_model is a running average (bias-corrected EMA,
USB's DistAlignEMAHook) of the model's mean unlabeled prediction and p_target is uniform (the
labeled splits are class-balanced). It keeps the pseudo-labels from collapsing onto a few classes
when the first classifier is poor, as it is with one label per class.

`strong_augment='ctaugment'` replaces RandAugment by CTAugment (the FixMatch paper's other
recipe; jaxssl/data/ctaugment.py) for every method of the family: its bin weights live in the
method state, and each step also classifies a probe view of the labeled batch with the evaluated
(EMA) model in inference mode, as the official code's classify_op, to update them. The official
code runs that probe in the same session call as the update; here it uses the EMA before the
step's update.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxssl import core
from jaxssl.data import ctaugment
from jaxssl.methods import DataSpec, Method
from jaxssl.methods import _classifier as C


def defaults() -> dict:
  return C.defaults() | dict(
    threshold=0.95,  # τ: confidence of the weak view needed for a pseudo-label
    randaugment_ops=2,
    op_prob=0.5,  # 0.5: each RandAugment op applied with p = 0.5 (official code); 1.0: paper
    cutout_size=0.5,  # side as a fraction of the image: 16x16 at 32x32
    dist_align=False,  # distribution alignment of the weak view's probabilities (ReMixMatch)
    dist_align_momentum=0.999,  # of the running mean prediction p_model
    strong_augment='randaugment',  # randaugment | ctaugment (+ Cutout either way)
    cta_depth=2,  # CTAugment: ops per view (official adepth)
    cta_threshold=0.8,  # bins whose normalised weight is below it are not drawn (ath)
    cta_decay=0.99,  # of the bin weights (adecay)
  )


STRONG = ('randaugment', 'ctaugment')


def _cta(config) -> ctaugment.Config:
  return ctaugment.Config(config.cta_depth, config.cta_threshold, config.cta_decay)


def augment_state(config) -> dict:
  """The strong augmentation's state: CTAugment's bin weights, or nothing."""
  C.choice(config, 'strong_augment', STRONG)
  return {'cta_rates': ctaugment.init_rates()} if config.strong_augment == 'ctaugment' else {}


def init_state(data: DataSpec) -> dict:
  """Method state of the FixMatch objective: the running mean prediction of distribution
  alignment, as an EMA accumulator started at 0 and bias-corrected by the step count."""
  return {'p_model': jnp.zeros(data.num_classes)}


def align(state, probs_w, step, config):
  """Distribution alignment: (aligned probabilities, state updates, monitors)."""
  m = config.dist_align_momentum
  p_sum = m * state['p_model'] + (1 - m) * probs_w.mean(0)
  p_model = p_sum / (1 - m ** (step + 1.0))  # the average of the predictions seen so far
  aligned = probs_w / p_model  # times the uniform target
  aligned = aligned / aligned.sum(-1, keepdims=True)
  monitors = {'monitor/p_model_min': p_model.min(), 'monitor/p_model_max': p_model.max()}
  return aligned, {'p_model': p_sum}, monitors


def ema_alignment(p_model, probs_w, p_target, step, momentum: float):
  """USB's DistAlignEMAHook (SoftMatch, AdaMatch): the running mean prediction p_model starts at
  the first batch's mean, then an EMA; probs · (p_target + 1e-6) / (p_model + 1e-6), renormalised.
  Returns (aligned probabilities, new p_model)."""
  mean = probs_w.mean(0)
  p_model = jnp.where(step == 0, mean, momentum * p_model + (1 - momentum) * mean)
  aligned = probs_w * (p_target + 1e-6) / (p_model + 1e-6)
  return aligned / aligned.sum(-1, keepdims=True), p_model


def confidence_mask(state, probs_w, batch, config, threshold):
  """FixMatch's fixed threshold τ (`threshold`, an input of the step): (mask, method state
  updates, monitors)."""
  return (jnp.max(probs_w, -1) >= threshold).astype(jnp.float32), {}, {}


def strong_view(config, state, images, key):
  """RandAugment's or CTAugment's view, + Cutout."""
  if getattr(config, 'strong_augment', 'randaugment') == 'ctaugment':
    k_weak, k_cta = jax.random.split(key)
    return ctaugment.augment_batch(
      C.weak(config, images, k_weak), state['cta_rates'], k_cta, _cta(config),
      probe=False, cutout_level=1.0,
    )[0]  # fmt: skip
  return C.strong(
    config,
    images,
    key,
    num_ops=config.randaugment_ops,
    op_prob=config.op_prob,
    cutout_size=config.cutout_size,
  )


def views(config, state, batch, key):
  """(labeled, weak, strong) views."""
  k_l, k_w, k_s = jax.random.split(key, 3)
  x_l = C.labeled_images(config, batch, k_l)
  u_w = C.weak(config, batch['x_u'], k_w)
  return x_l, u_w, strong_view(config, state, batch['x_u'], k_s)


def probe_update(config, net, state, x_l, y_l, key) -> dict:
  """CTAugment's learning step: classify a probe view of each labeled image with the evaluated
  model and move the probed bins towards 1 − ½‖p − onehot(y)‖₁."""
  cfg = _cta(config)
  probe, ops, levels = ctaugment.augment_batch(x_l, state['cta_rates'], key, cfg, probe=True)
  logits = net(state['avg'], state['rest'], probe, train=False)[0]
  prox = ctaugment.proximity(jax.nn.softmax(jax.lax.stop_gradient(logits)), y_l)
  rates = ctaugment.update_rates(state['cta_rates'], ops, levels, prox, cfg)
  return {'cta_rates': rates}, {'monitor/cta_probe_proximity': prox.mean()}


def augment_updates(config, net, state, x_l, batch, key):
  """CTAugment's probe update, where the state has its weights: (state updates, monitors)."""
  if 'cta_rates' not in state:
    return {}, {}
  k_probe = jax.random.fold_in(key, 1)  # the views' keys stay those of RandAugment runs
  return probe_update(config, net, state, x_l, batch['y_l'], k_probe)


class Pseudo(NamedTuple):
  """What a FixMatch-family method decides from the weak view: the pseudo-labels (classes, or
  distributions over them: Dash's soft targets), each one's weight in the unlabeled loss (0/1
  for a threshold, in [0, 1] for SoftMatch), updates of the method's state, and monitors."""

  labels: jax.Array
  mask: jax.Array
  updates: dict
  monitors: dict


def thresholded(config, mask_fn=confidence_mask):
  """FixMatch's pseudo-labels: optional distribution alignment, then `mask_fn(state, probs_w,
  batch, config, threshold) -> (mask, updates, monitors)` (FlexMatch passes its class-wise
  thresholds), τ from the step's inputs."""

  def fn(state, probs_w, probs_l, batch, step, hp):
    updates, monitors = {}, {}
    if config.dist_align:
      probs_w, updates, monitors = align(state, probs_w, step, config)
    mask, more_updates, more = mask_fn(state, probs_w, batch, config, hp['threshold'])
    return Pseudo(jnp.argmax(probs_w, -1), mask, updates | more_updates, monitors | more)

  return fn


def objective(config, pseudo_fn=None, extra_loss=None):
  """The FixMatch loss: the strong views' cross-entropy against the weak views' pseudo-labels,
  weighted per example. Its successors change two things:
  `pseudo_fn(state, probs_w, probs_l, batch, step, hp) -> Pseudo`, from the softmax of the weak
  unlabeled and the labeled views (stop-gradient) and the step's inputs, and an added term
  `extra_loss(pseudo, logits_s) -> (weighted loss, metrics)` (FreeMatch's fairness loss)."""
  pseudo_fn = pseudo_fn or thresholded(config)

  def fn(net, params, state, batch, key, step, hp):
    x_l, u_w, u_s = views(config, state, batch, key)
    (logits_l, logits_w, logits_s), rest = C.forward_all(net, params, state, (x_l, u_w, u_s))
    sup = C.cross_entropy(logits_l, batch['y_l']).mean()
    probs = lambda logits: jax.nn.softmax(jax.lax.stop_gradient(logits))
    pseudo = pseudo_fn(state, probs(logits_w), probs(logits_l), batch, step, hp)
    unsup = jnp.mean(C.cross_entropy(logits_s, pseudo.labels) * pseudo.mask)
    hard = pseudo.labels if pseudo.labels.ndim == 1 else jnp.argmax(pseudo.labels, -1)
    monitors = core.monitors(batch, logits_l, jax.nn.one_hot(hard, logits_w.shape[-1]), pseudo.mask)
    more, cta_monitors = augment_updates(config, net, state, x_l, batch, key)
    updates = pseudo.updates | more
    monitors |= cta_monitors
    extra, metrics = extra_loss(pseudo, logits_s) if extra_loss else (0.0, {})
    loss, aux = C.combine(rest, sup, unsup, hp['lambda_u'], monitors | pseudo.monitors, **metrics)
    return loss + extra, aux._replace(updates=updates)

  return fn


def make_family(config, data: DataSpec, pseudo_fn=None, extra_loss=None, init_extra=dict):
  """A FixMatch-family method: the objective above with its pseudo-label hook, its own state
  (`init_extra`) and the strong augmentation's. λu and, where the method's config has one, τ
  (`threshold`) are inputs of the step; the successors that replace τ drop it from theirs."""
  augment = augment_state(config)  # checks strong_augment before any compute
  inputs = ('lambda_u', 'threshold') if 'threshold' in config else ('lambda_u',)
  return C.make(
    config,
    data,
    objective(config, pseudo_fn, extra_loss),
    unlabeled_views=('weak', 'strong'),
    init_extra=lambda: init_extra() | augment,
    step_inputs=inputs,
  )


def make(config, data: DataSpec) -> Method:
  return make_family(config, data, init_extra=lambda: init_state(data))
