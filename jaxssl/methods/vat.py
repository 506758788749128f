"""Virtual adversarial training (Miyato et al. 2018), with optional entropy minimization.

The adversarial direction is found by power iteration: start from a random unit direction d,
take the gradient of KL(p(y|x) ‖ p(y|x + r)) at r = ξd with respect to r, normalize, repeat; the
perturbation is ε times it. The unlabeled loss is KL(p(y|x) ‖ p(y|x + r_adv)) with the clean
prediction held fixed, plus `entmin_weight` × entropy of p(y|x) (VAT+EntMin). λu = 0.3, ε = 6,
ξ = 1e-6, one iteration, entropy weight 0.06, ramp over 0.4 of 2^20 steps: USB's values.

As in the authors' code (takerum/vat_tf) and USB, the clean and the perturbed unlabeled passes
each run on the unlabeled batch alone, in training mode: batch norm normalizes them with the
statistics of the same images, so the divergence is exactly 0 at r = 0 and its gradient is the
network's, not a batch-composition artefact. Only the labeled pass updates the running statistics.
`xi=0` replaces the finite difference with the exact Hessian-vector product (its ξ → 0 limit).
"""

import jax
import jax.numpy as jnp
import optax

from jaxssl import core
from jaxssl.methods import DataSpec, Method
from jaxssl.methods import _classifier as C


def defaults() -> dict:
  return C.defaults() | dict(
    lambda_u=0.3,
    eps=6.0,  # L2 norm of the perturbation per image, in [0, 1] pixel units
    xi=1e-6,  # finite-difference step of the power iteration; 0: exact Hessian-vector product
    power_iterations=1,
    entmin_weight=0.06,  # 0 turns entropy minimization off
    ramp_steps=419_430,
  )


def _unit(d):
  """Per-example unit L2 norm, scaled first so tiny gradients do not underflow (as VAT's code)."""
  axes = tuple(range(1, d.ndim))
  d = d / (1e-12 + jnp.max(jnp.abs(d), axes, keepdims=True))
  return d / jnp.maximum(jnp.sqrt(jnp.sum(d**2, axes, keepdims=True)), 1e-12)


def kl_divergence(target_logits, logits) -> jax.Array:
  """Per-example KL(softmax(target) ‖ softmax(logits))."""
  log_softmax = jax.nn.log_softmax
  return optax.losses.kl_divergence_with_log_targets(
    log_softmax(logits), log_softmax(target_logits)
  )


def adversarial_perturbation(logits_fn, x, logits, key, *, xi: float, eps: float, iterations: int):
  """r_adv of norm ε per example: power iteration on the KL's Hessian at x (stop-gradient)."""
  logits = jax.lax.stop_gradient(logits)
  grad_kl = jax.grad(lambda r: jnp.sum(kl_divergence(logits, logits_fn(x + r))))
  d = jax.random.normal(key, x.shape)
  for _ in range(iterations):
    if xi > 0:
      d = grad_kl(xi * _unit(d))
    else:  # H·u as the gradient of ∇KL·u: reverse over reverse, as jvp cannot differentiate a
      # custom_vjp (the SmallCNN's CPU max pool) and failed there
      u = _unit(d)
      d = jax.grad(lambda r, u=u: jnp.vdot(grad_kl(r), u))(jnp.zeros_like(x))
  return jax.lax.stop_gradient(eps * _unit(d))


def make(config, data: DataSpec) -> Method:
  def objective(net, params, state, batch, key, step, hp):
    k_l, k_u, k_d = jax.random.split(key, 3)
    x_l = C.labeled_images(config, batch, k_l)
    u = C.weak(config, batch['x_u'], k_u)
    logits_l, rest = net(params, state['rest'], x_l, train=True)
    sup = C.cross_entropy(logits_l, batch['y_l']).mean()
    unlabeled = lambda x: net(params, state['rest'], x, train=True)[0]  # statistics discarded
    logits_u = unlabeled(u)
    r_adv = adversarial_perturbation(
      unlabeled, u, logits_u, k_d, xi=config.xi, eps=config.eps, iterations=config.power_iterations
    )
    unsup = jnp.mean(kl_divergence(jax.lax.stop_gradient(logits_u), unlabeled(u + r_adv)))
    probs = jax.nn.softmax(logits_u)
    entropy = -jnp.mean(jnp.sum(probs * jax.nn.log_softmax(logits_u), -1))
    weight = hp['lambda_u'] * C.ramp(step, config.ramp_steps)
    monitors = core.monitors(batch, logits_l, logits_u)
    loss, aux = C.combine(rest, sup, unsup, weight, monitors, **{'loss/entropy': entropy})
    return loss + hp['entmin_weight'] * entropy, aux

  return C.make(
    config, data, objective, unlabeled_views=('weak',), step_inputs=('lambda_u', 'entmin_weight')
  )
