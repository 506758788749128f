"""SoftMatch (Chen et al. 2023, arXiv 2301.10921): FixMatch whose pseudo-labels are weighted by a
truncated Gaussian of their confidence instead of cut at a threshold, as USB
(semilearn/algorithms/softmatch) trains it.

Uniform alignment: the weak view's probabilities are scaled by p_target / p_model (p_model the
running mean prediction, USB's DistAlignEMAHook; p_target uniform, or with `dist_uniform=False`
the running mean prediction on the labeled batch). Weight of a pseudo-label of confidence p
(the aligned maximum): 1 if p ≥ μ_t, else exp(−(p − μ_t)² / (2 σ²_t / n_sigma²)), where μ_t and
σ²_t are EMAs (`ema_p`) of the batch's mean and unbiased variance of p, started at 1/C and 1
(`per_class`: one μ, σ² per predicted class; a class predicted fewer than twice in a batch pulls
its EMAs towards 0 and 1, as USB). Early on σ² is large, so every pseudo-label counts with a
weight near 1; as the model grows confident the Gaussian narrows.

As USB's code: the hard pseudo-label is the argmax of the weak view before alignment (alignment
only sets the weights), and the EMAs take the current batch before it is weighted.
"""

import jax
import jax.numpy as jnp

from jaxssl.methods import DataSpec, Method, fixmatch


def defaults() -> dict:
  unused = ('threshold', 'dist_align', 'dist_align_momentum')  # the weights replace them
  base = {k: v for k, v in fixmatch.defaults().items() if k not in unused}
  return base | dict(
    ema_p=0.999,  # momentum of p_model, μ_t and σ²_t
    n_sigma=2.0,  # the Gaussian's width: σ_t / n_sigma
    dist_uniform=True,  # alignment target: uniform, or the labeled batch's running mean
    per_class=False,  # one μ_t, σ²_t per predicted class
  )


def init_state(num_classes: int, per_class: bool) -> dict:
  shape = (num_classes,) if per_class else ()
  uniform = jnp.full(num_classes, 1.0 / num_classes, jnp.float32)
  return {
    'p_model': uniform,  # replaced by the first batch's mean at step 0
    'p_target': uniform,
    'prob_max_mu': jnp.full(shape, 1.0 / num_classes, jnp.float32),
    'prob_max_var': jnp.ones(shape, jnp.float32),
  }


def confidence_stats(probs, per_class: bool):
  """(mean, unbiased variance) of the batch's max probability, overall or per predicted class
  (0 and 1 for a class with fewer than two examples, as USB)."""
  conf = jnp.max(probs, -1)
  n = conf.shape[0]
  if not per_class:
    mean = conf.mean()
    return mean, jnp.sum(jnp.square(conf - mean)) / (n - 1)
  num_classes = probs.shape[-1]
  onehot = jax.nn.one_hot(jnp.argmax(probs, -1), num_classes)
  count = onehot.sum(0)
  mean = (onehot * conf[:, None]).sum(0) / jnp.maximum(count, 1)
  var = (onehot * jnp.square(conf[:, None] - mean)).sum(0) / jnp.maximum(count - 1, 1)
  enough = count > 1
  return jnp.where(enough, mean, 0.0), jnp.where(enough, var, 1.0)


def gaussian_weights(probs, mu, var, n_sigma: float, per_class: bool):
  conf, pred = jnp.max(probs, -1), jnp.argmax(probs, -1)
  if per_class:
    mu, var = mu[pred], var[pred]
  return jnp.exp(-jnp.square(jnp.minimum(conf - mu, 0.0)) / (2 * var / n_sigma**2))


def pseudo_labels(config):
  def fn(state, probs_w, probs_l, batch, step, hp):
    m = config.ema_p
    p_target = state['p_target']
    if not config.dist_uniform:
      p_target = m * p_target + (1 - m) * probs_l.mean(0)
    aligned, p_model = fixmatch.ema_alignment(state['p_model'], probs_w, p_target, step, m)
    mu, var = confidence_stats(aligned, config.per_class)
    mu = m * state['prob_max_mu'] + (1 - m) * mu
    var = m * state['prob_max_var'] + (1 - m) * var
    weights = gaussian_weights(aligned, mu, var, config.n_sigma, config.per_class)
    updates = {'p_model': p_model, 'p_target': p_target, 'prob_max_mu': mu, 'prob_max_var': var}
    monitors = {'monitor/prob_max_mu': mu.mean(), 'monitor/prob_max_var': var.mean()}
    return fixmatch.Pseudo(jnp.argmax(probs_w, -1), weights, updates, monitors)

  return fn


def make(config, data: DataSpec) -> Method:
  return fixmatch.make_family(
    config,
    data,
    pseudo_labels(config),
    init_extra=lambda: init_state(data.num_classes, config.per_class),
  )
