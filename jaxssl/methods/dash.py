"""Dash (Xu et al. 2021, arXiv 2109.00650): FixMatch whose pseudo-labels count while their loss
is below a threshold that decays through training, as USB (semilearn/algorithms/dash) trains it.

After `warmup_steps` of supervised training, ρ_init is set once; from then on the threshold is
ρ_k = max(C · γ^(−k) · ρ_init, ρ_min), k the number of `rho_update_every` periods since the
warm-up (USB: every 10 epochs of 1,024 steps). An unlabeled example counts if the cross-entropy
of its weak view against its own pseudo-label is ≤ ρ_k. The pseudo-label is soft,
softmax(logits_w / T), until ρ reaches ρ_min, then hard (one-hot).

Deviations from USB, where its recipe is not a pure function of the training data:
- ρ_init: USB's is the loss of the warmed-up model on its evaluation set, i.e. the CIFAR test
  set, with the true labels. Here it is the mean of the masking loss above over the unlabeled
  batch of the first step after the warm-up: no held-out labels used, and the same quantity the
  threshold is compared with.
- The warm-up is the first `warmup_steps` of the run (unlabeled loss off, unlabeled images still
  in the forward pass and so in batch norm's statistics); USB runs it before its 2^20 steps and
  forwards labeled images only.
"""

import jax
import jax.numpy as jnp

from jaxssl.methods import DataSpec, Method, fixmatch


def defaults() -> dict:
  unused = ('threshold', 'dist_align', 'dist_align_momentum')  # the loss threshold replaces them
  base = {k: v for k, v in fixmatch.defaults().items() if k not in unused}
  return base | dict(
    gamma=1.27,  # γ: the threshold's decay per period
    rho_c=1.0001,  # C
    rho_min=0.05,  # ρ_min
    warmup_steps=2048,  # USB's num_wu_iter
    rho_update_every=10_240,  # USB: 10 epochs of 1,024 steps
    temperature=0.5,  # T of the soft pseudo-labels
  )


def init_state() -> dict:
  return {'rho_init': jnp.zeros((), jnp.float32)}


def threshold(rho_init, step, config):
  periods = jnp.maximum(step - config.warmup_steps, 0) // config.rho_update_every
  rho = config.rho_c * config.gamma ** (-periods.astype(jnp.float32)) * rho_init
  return jnp.maximum(rho, config.rho_min)


def pseudo_labels(config):
  def fn(state, probs_w, probs_l, batch, step, hp):
    # probs_w is softmax(logits_w): softmax(logits_w / T) ∝ probs_w^(1/T).
    soft = jax.nn.softmax(jnp.log(probs_w + 1e-30) / config.temperature)
    first = step == config.warmup_steps
    rho_init = state['rho_init']
    soft_loss = -jnp.sum(soft * jnp.log(probs_w + 1e-30), -1)
    rho_init = jnp.where(first, soft_loss.mean(), rho_init)
    rho = threshold(rho_init, step, config)
    after_warmup = step >= config.warmup_steps  # before it ρ_init is unset: nothing counts
    hard = (rho <= config.rho_min) & after_warmup
    onehot = jax.nn.one_hot(jnp.argmax(probs_w, -1), probs_w.shape[-1])
    targets = jnp.where(hard, onehot, soft)
    loss_w = -jnp.sum(targets * jnp.log(probs_w + 1e-30), -1)
    mask = ((loss_w <= rho) & after_warmup).astype(jnp.float32)
    monitors = {'monitor/rho': rho, 'monitor/hard_labels': hard.astype(jnp.float32)}
    return fixmatch.Pseudo(targets, mask, {'rho_init': rho_init}, monitors)

  return fn


def make(config, data: DataSpec) -> Method:
  return fixmatch.make_family(config, data, pseudo_labels(config), init_extra=init_state)
