"""FreeMatch's self-adaptive thresholds and fairness loss against a direct transcription of USB's
PyTorch code (semilearn/algorithms/freematch) in NumPy, on small arrays."""

import jax.numpy as jnp
import numpy as np

from jaxssl.methods import freematch


def _usb_update(time_p, p_model, label_hist, probs, m):
  max_probs, max_idx = probs.max(-1), probs.argmax(-1)
  time_p = time_p * m + (1 - m) * max_probs.mean()
  p_model = p_model * m + (1 - m) * probs.mean(0)
  hist = np.bincount(max_idx, minlength=probs.shape[1]).astype(np.float64)
  label_hist = label_hist * m + (1 - m) * hist / hist.sum()
  mod = p_model / p_model.max()
  mask = (max_probs >= time_p * mod[max_idx]).astype(np.float64)
  return time_p, p_model, label_hist, mask


def _usb_entropy_loss(mask, logits_s, p_model, label_hist):
  logits = logits_s[mask.astype(bool)]
  prob_s = np.exp(logits - logits.max(-1, keepdims=True))
  prob_s /= prob_s.sum(-1, keepdims=True)
  hist_s = np.bincount(prob_s.argmax(-1), minlength=logits.shape[1]).astype(np.float64)
  hist_s /= hist_s.sum()
  with np.errstate(divide='ignore'):
    scale_model = np.where(np.isinf(1 / label_hist), 0.0, 1 / label_hist)
    scale_s = np.where(np.isinf(1 / hist_s), 0.0, 1 / hist_s)
  mod_model = p_model * scale_model
  mod_model /= mod_model.sum()
  mod_mean = prob_s.mean(0) * scale_s
  mod_mean /= mod_mean.sum()
  return float(np.sum(mod_model * np.log(mod_mean + 1e-12)))


def test_thresholds_and_mask_match_usb():
  rng = np.random.default_rng(0)
  num_classes, m = 5, 0.5  # a fast EMA: τ reaches the mean confidence within a few steps
  state = freematch.init_state(num_classes, 'uniform')
  ref = (1 / num_classes, np.full(num_classes, 1 / num_classes), np.full(num_classes, 0.2))
  masks = []
  for _ in range(4):
    logits = rng.normal(size=(16, num_classes)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    state, thresholds = freematch.self_adaptive(state, jnp.asarray(probs, jnp.float32), m)
    *ref, mask_ref = _usb_update(*ref, probs, m)
    mask = probs.max(-1) >= np.asarray(thresholds)[probs.argmax(-1)]
    np.testing.assert_allclose(state['time_p'], ref[0], rtol=1e-5)
    np.testing.assert_allclose(state['p_model'], ref[1], rtol=1e-5)
    np.testing.assert_allclose(state['label_hist'], ref[2], rtol=1e-5)
    np.testing.assert_array_equal(mask, mask_ref.astype(bool))
    masks.append(mask)
  assert 0 < np.mean(masks) < 1  # the comparison covered kept and dropped pseudo-labels


def test_fairness_loss_matches_usb_and_is_zero_without_pseudo_labels():
  rng = np.random.default_rng(1)
  logits_s = rng.normal(size=(12, 4)) * 2
  mask = (rng.uniform(size=12) < 0.6).astype(np.float32)
  p_model = rng.dirichlet(np.ones(4))
  label_hist = np.array([0.5, 0.3, 0.2, 0.0])  # a class never predicted: USB's 1/0 -> 0
  got = freematch.fairness_loss(
    jnp.asarray(mask),
    jnp.asarray(logits_s, jnp.float32),
    jnp.asarray(p_model, jnp.float32),
    jnp.asarray(label_hist, jnp.float32),
  )
  np.testing.assert_allclose(got, _usb_entropy_loss(mask, logits_s, p_model, label_hist), rtol=1e-4)
  none = freematch.fairness_loss(
    jnp.zeros(12),
    jnp.asarray(logits_s, jnp.float32),
    jnp.asarray(p_model, jnp.float32),
    jnp.asarray(label_hist, jnp.float32),
  )
  assert float(none) == 0.0


def test_usb_initialisation_masks_everything_at_first():
  # USB's code starts τ at 1: no pseudo-label can pass until the EMA decays (the docstring's
  # reason for the paper's 1/C default).
  probs = jnp.full((8, 4), 0.05).at[:, 0].set(0.85)
  _, thresholds = freematch.self_adaptive(freematch.init_state(4, 'ones'), probs, 0.999)
  assert float(thresholds[0]) > 0.99
  _, thresholds = freematch.self_adaptive(freematch.init_state(4, 'uniform'), probs, 0.999)
  assert float(thresholds[0]) < 0.26
