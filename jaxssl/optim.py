"""Schedules and weight averaging that several published recipes share."""

import optax


def constant_then_linear_decay(lr: float, num_steps: int, decay_fraction: float):
  """lr, then linearly to 0 over the final `decay_fraction` of num_steps (Improved-GAN, Ladder)."""
  decay_steps = int(decay_fraction * num_steps)
  return optax.join_schedules(
    [optax.constant_schedule(lr), optax.linear_schedule(lr, 0.0, max(decay_steps, 1))],
    [num_steps - decay_steps],
  )


def polyak(decay: float):
  """Polyak averaging of params: (transformation, state -> averaged params).

  Starts from zero as `a <- a + (1 - decay)(p - a)` and is bias-corrected, so it is a proper
  weighted average of the iterates from the first step on.
  """
  ema = optax.ema(decay, debias=True)
  average = lambda s: optax.tree_utils.tree_bias_correction(s.ema, decay, s.count)
  return ema, average
