"""The shared training core's schedules and weight averages, against their formulas."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxssl import core


@pytest.mark.parametrize('fraction', [0.0, 0.3, 1.0])
def test_linear_decay_is_constant_then_linear_to_zero(fraction):
  # Improved-GAN's and the Ladder's schedule: lr until the last `fraction` of the steps, then
  # linearly to 0 at num_steps.
  lr, num_steps = 3.0, 100
  fn = core.schedule('linear_decay', lr, num_steps, fraction)
  start = num_steps - int(fraction * num_steps)
  for step in sorted({0, 1, max(start - 1, 0), start, min(start + 7, num_steps), 85, 99}):
    want = lr if step <= start else lr * (num_steps - step) / (num_steps - start)
    np.testing.assert_allclose(float(fn(step)), want, rtol=1e-6, atol=1e-6, err_msg=str(step))


def test_cosine_schedule_is_fixmatchs():
  fn = core.schedule('cosine', 0.03, 1000)
  for step in [0, 500, 1000]:
    np.testing.assert_allclose(float(fn(step)), 0.03 * np.cos(7 * np.pi * step / 16000), rtol=1e-6)


def test_polyak_average_is_the_bias_corrected_exponential_mean():
  # The Improved-GAN authors' a <- a + (1 - d)(p - a) from a = 0, divided by 1 - d^t: the
  # weighted mean of the iterates with weights d^(t-k).
  decay = 0.9
  iterates = [{'w': jnp.full((3,), float(k) ** 2)} for k in range(1, 8)]
  model = {'params': iterates[0], 'avg': optax.ema(0.0, debias=True).init(iterates[0])}
  np.testing.assert_array_equal(core.averaged(model, decay)['w'], iterates[0]['w'])  # no step yet
  for t, params in enumerate(iterates, 1):
    model = {'params': params, 'avg': core.keep_average(model['avg'], params, t - 1, decay)}
    weights = np.array([decay ** (t - k) for k in range(1, t + 1)])
    want = sum(w * float(p['w'][0]) for w, p in zip(weights, iterates[:t])) / weights.sum()
    np.testing.assert_allclose(core.averaged(model, decay)['w'], want, rtol=1e-5)


def test_ema_warms_up_and_then_trails_the_weights():
  # Mean Teacher's decay min(d, 1 - 1/(t + 1)): the first step copies the weights (no random
  # init averaged in), later ones move by (1 - d).
  avg = {'w': jnp.zeros(2)}
  avg = core.keep_average(avg, {'w': jnp.ones(2)}, 0, 0.99)
  np.testing.assert_array_equal(avg['w'], 1.0)
  avg = core.keep_average(avg, {'w': jnp.full(2, 3.0)}, 1, 0.99)  # decay 1/2
  np.testing.assert_allclose(avg['w'], 2.0)
  avg = core.keep_average(avg, {'w': jnp.full(2, 102.0)}, 1000, 0.99)
  np.testing.assert_allclose(avg['w'], 0.99 * 2.0 + 0.01 * 102.0, rtol=1e-6)
