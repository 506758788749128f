"""The newer methods' pseudo-labels, weights, banks and targets against direct NumPy
transcriptions of USB's PyTorch code (semilearn/algorithms/{softmatch,adamatch,dash,simmatch,
remixmatch}, hooks/dist_align.py), step by step on small arrays, so the running statistics are
compared too."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxssl import methods
from jaxssl.methods import adamatch, dash, softmatch


def _softmax(z):
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


class _UsbDistAlignEMA:
  """DistAlignEMAHook: p_model None until the first batch; p_target uniform, or 'model'."""

  def __init__(self, num_classes, m, target):
    self.m, self.update_target = m, target == 'model'
    self.p_target, self.p_model = np.full(num_classes, 1 / num_classes), None

  def __call__(self, probs_u, probs_l):
    mean = probs_u.mean(0)
    self.p_model = mean if self.p_model is None else self.p_model * self.m + mean * (1 - self.m)
    if self.update_target:
      self.p_target = self.p_target * self.m + probs_l.mean(0) * (1 - self.m)
    aligned = probs_u * (self.p_target + 1e-6) / (self.p_model + 1e-6)
    return aligned / aligned.sum(-1, keepdims=True)


class _UsbSoftMatchWeighting:
  def __init__(self, num_classes, n_sigma, m, per_class):
    self.n_sigma, self.m, self.per_class = n_sigma, m, per_class
    shape = (num_classes,) if per_class else ()
    self.mu, self.var = np.full(shape, 1 / num_classes), np.ones(shape)

  def __call__(self, probs):
    max_probs, max_idx = probs.max(-1), probs.argmax(-1)
    if not self.per_class:
      mu, var = max_probs.mean(), max_probs.var(ddof=1)
    else:
      mu, var = np.zeros_like(self.mu), np.ones_like(self.var)
      for i in range(len(mu)):
        p = max_probs[max_idx == i]
        if len(p) > 1:
          mu[i], var[i] = p.mean(), p.var(ddof=1)
    self.mu = self.m * self.mu + (1 - self.m) * mu
    self.var = self.m * self.var + (1 - self.m) * var
    mu, var = (self.mu[max_idx], self.var[max_idx]) if self.per_class else (self.mu, self.var)
    return np.exp(-(np.minimum(max_probs - mu, 0.0) ** 2) / (2 * var / self.n_sigma**2))


def _batches(num_classes, steps=5, seed=0):
  rng = np.random.default_rng(seed)
  for _ in range(steps):
    # Skewed towards class 0, confident enough that some weights/masks are below 1.
    u = rng.normal(size=(24, num_classes)) * 2.5 + np.eye(num_classes)[0] * 1.5
    l = rng.normal(size=(8, num_classes)) * 3
    yield _softmax(u), _softmax(l)


@pytest.mark.parametrize('per_class, dist_uniform', [(False, True), (True, True), (False, False)])
def test_softmatch_weights_and_labels_match_usb(per_class, dist_uniform):
  num_classes, m = 4, 0.7  # a fast EMA: the statistics move within a few steps
  config = ml_collections.ConfigDict(
    dict(ema_p=m, n_sigma=2.0, per_class=per_class, dist_uniform=dist_uniform)
  )
  fn = softmatch.pseudo_labels(config)
  state = softmatch.init_state(num_classes, per_class)
  align = _UsbDistAlignEMA(num_classes, m, 'uniform' if dist_uniform else 'model')
  weighting = _UsbSoftMatchWeighting(num_classes, 2.0, m, per_class)
  weights = []
  for step, (probs_u, probs_l) in enumerate(_batches(num_classes)):
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    pseudo = fn(state, f32(probs_u), f32(probs_l), {}, jnp.asarray(step), {})
    state = {**state, **pseudo.updates}
    ref = weighting(align(probs_u, probs_l))
    np.testing.assert_allclose(pseudo.mask, ref, rtol=2e-5, atol=1e-6)
    np.testing.assert_array_equal(pseudo.labels, probs_u.argmax(-1))  # before alignment
    np.testing.assert_allclose(state['prob_max_mu'], weighting.mu, rtol=1e-5)
    np.testing.assert_allclose(state['prob_max_var'], weighting.var, rtol=1e-5)
    weights.append(np.asarray(pseudo.mask))
  weights = np.concatenate(weights)
  assert (weights == 1).any() and (weights < 0.9).any(), 'both sides of the Gaussian compared'


def test_adamatch_alignment_and_relative_threshold_match_usb():
  num_classes, m, tau = 4, 0.7, 0.95
  config = ml_collections.ConfigDict(dict(ema_p=m))  # τ comes as an input
  fn = adamatch.pseudo_labels(config)
  state = adamatch.init_state(num_classes)
  align = _UsbDistAlignEMA(num_classes, m, 'model')
  masks = []
  for step, (probs_u, probs_l) in enumerate(_batches(num_classes, seed=1)):
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    hp = {'threshold': f32(tau)}  # an input of the step
    pseudo = fn(state, f32(probs_u), f32(probs_l), {}, jnp.asarray(step), hp)
    state = {**state, **pseudo.updates}
    aligned = align(probs_u, probs_l)
    ref_mask = aligned.max(-1) >= probs_l.max(-1).mean() * tau  # AdaMatchThresholdingHook
    np.testing.assert_array_equal(np.asarray(pseudo.mask, bool), ref_mask)
    np.testing.assert_array_equal(pseudo.labels, aligned.argmax(-1))
    np.testing.assert_allclose(state['p_target'], align.p_target, rtol=1e-5)
    np.testing.assert_allclose(state['p_model'], align.p_model, rtol=1e-5)
    masks.append(ref_mask)
  assert 0 < np.mean(masks) < 1, 'kept and dropped pseudo-labels compared'


class _UsbDash:
  """DashThresholdingHook with `algorithm.it` counted from the end of the warm-up (USB resets it
  there) and rho_init given, as USB's evaluation loss would give it."""

  def __init__(self, rho_init, gamma, c, rho_min, period, temperature):
    self.rho_init, self.gamma, self.c, self.rho_min = rho_init, gamma, c, rho_min
    self.period, self.t, self.count, self.rho = period, temperature, 0, None

  def __call__(self, it, logits):
    if it % self.period == 0:
      self.rho = max(self.c * self.gamma**-self.count * self.rho_init, self.rho_min)
      self.count += 1
    hard = self.rho == self.rho_min
    p = _softmax(logits)
    target = np.eye(logits.shape[1])[p.argmax(-1)] if hard else _softmax(logits / self.t)
    loss = -(target * np.log(p)).sum(-1)
    return loss <= self.rho, target


def test_dash_threshold_and_targets_match_usb():
  num_classes, warmup, period = 4, 3, 2
  config = ml_collections.ConfigDict(
    dict(gamma=3.0, rho_c=1.0001, rho_min=0.05, warmup_steps=warmup, rho_update_every=period,
         temperature=0.5)
  )  # fmt: skip
  fn, state = dash.pseudo_labels(config), dash.init_state()
  rng = np.random.default_rng(2)
  ref, masks, hard_seen = None, [], False
  for step in range(warmup + 8):
    logits = rng.normal(size=(32, num_classes)) * (1 + step)  # growing confidence
    probs = jnp.asarray(_softmax(logits), jnp.float32)
    pseudo = fn(state, probs, None, {}, jnp.asarray(step), {})
    state = {**state, **pseudo.updates}
    if step < warmup:
      assert not np.asarray(pseudo.mask).any()
      continue
    if ref is None:  # ρ_init: the first post-warm-up batch's mean soft-target loss
      soft = _softmax(logits / 0.5)
      rho_init = float(-(soft * np.log(_softmax(logits))).sum(-1).mean())
      np.testing.assert_allclose(state['rho_init'], rho_init, rtol=1e-5)
      ref = _UsbDash(rho_init, 3.0, 1.0001, 0.05, period, 0.5)
    mask, target = ref(step - warmup, logits)
    np.testing.assert_array_equal(np.asarray(pseudo.mask, bool), mask)
    np.testing.assert_allclose(pseudo.labels, target, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(pseudo.monitors['monitor/rho'], ref.rho, rtol=1e-5)
    hard_seen |= ref.rho == 0.05
    masks.append(mask)
  assert hard_seen and 0 < np.mean(masks) < 1, 'soft and hard phases, kept and dropped'


def _normalize(x, axis):
  return x / np.linalg.norm(x, axis=axis, keepdims=True)


class _UsbSimMatch:
  """SimMatch.train_step's bank, alignment and targets (semilearn/algorithms/simmatch), given the
  embeddings and probabilities of one batch; `use_ema_teacher=False` (ema_bank = 0.7)."""

  def __init__(self, bank, da_len, num_classes, t, alpha, ema_bank):
    self.mem_bank = bank.T.copy()  # (proj, K) as USB
    self.labels_bank = np.zeros(bank.shape[0], np.int64)
    self.p_model, self.ptr = np.zeros((da_len, num_classes)), 0  # DistAlignQueueHook
    self.t, self.alpha, self.ema_bank = t, alpha, ema_bank

  def __call__(self, probs_w, feat_w, feat_s, feat_l, y_l, idx_lb, warm):
    self.p_model[self.ptr] = probs_w.mean(0)
    self.ptr = (self.ptr + 1) % len(self.p_model)
    c = probs_w.shape[1]
    probs = probs_w * (np.full(c, 1 / c) + 1e-6) / (self.p_model.mean(0) + 1e-6)
    probs = probs / probs.sum(-1, keepdims=True)
    bank = self.mem_bank.copy()
    teacher_orig = _softmax(feat_w @ bank / self.t)
    teacher = teacher_orig * probs[:, self.labels_bank]  # gather(1, labels_bank.expand)
    teacher /= teacher.sum(1, keepdims=True)
    aggregated = np.zeros((len(probs), c))
    for k, label in enumerate(self.labels_bank):  # scatter_add
      aggregated[:, label] += teacher_orig[:, k]
    smoothed = probs * self.alpha + aggregated * (1 - self.alpha)
    student = _softmax(feat_s @ bank / self.t)
    in_loss = np.sum(-teacher * np.log(student), 1).mean()
    if warm:
      in_loss, smoothed = 0.0 * in_loss, probs
    for j, i in enumerate(idx_lb):  # mem_bank[:, index] = normalize(...): in order, last wins
      self.mem_bank[:, i] = _normalize(
        self.ema_bank * bank[:, i] + (1 - self.ema_bank) * feat_l[j], 0
      )
      self.labels_bank[i] = y_l[j]
    return smoothed, in_loss


def test_simmatch_bank_targets_and_alignment_match_usb():
  from jaxssl.methods import simmatch

  num_classes, k, proj, da_len, t, alpha = 4, 6, 5, 3, 0.1, 0.9
  rng = np.random.default_rng(3)
  bank = _normalize(rng.normal(size=(k, proj)), 1)
  ref = _UsbSimMatch(bank, da_len, num_classes, t, alpha, 0.7)
  state = {'bank': jnp.asarray(bank, jnp.float32), 'labels': jnp.zeros(k, jnp.int32),
           'queue': jnp.zeros((da_len, num_classes))}  # fmt: skip
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  repeats = 0
  for step in range(6):  # the queue wraps around; the bank fills and is overwritten
    probs_w = _softmax(rng.normal(size=(8, num_classes)) * 2)
    feat_w, feat_s, feat_l = (_normalize(rng.normal(size=(n, proj)), 1) for n in (8, 8, 5))
    idx_lb = rng.integers(0, k, 5)  # with repeats: the last occurrence wins
    repeats += len(idx_lb) - len(set(idx_lb))
    y_l = rng.integers(0, num_classes, 5)
    warm = step < 2
    smoothed, in_loss = ref(probs_w, feat_w, feat_s, feat_l, y_l, idx_lb, warm)
    aligned, state['queue'] = simmatch.align_queue(state['queue'], f32(probs_w), jnp.asarray(step))
    ours, ours_in = simmatch.similarity(
      f32(feat_w), f32(feat_s), state['bank'], state['labels'], aligned, t, alpha
    )
    if warm:
      ours, ours_in = aligned, 0.0 * ours_in
    np.testing.assert_allclose(ours, smoothed, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours_in, in_loss, rtol=1e-4, atol=1e-6)
    state['bank'], state['labels'] = simmatch.update_bank(
      state['bank'], state['labels'], f32(feat_l), jnp.asarray(y_l), jnp.asarray(idx_lb), 0.7
    )
    np.testing.assert_allclose(state['bank'], ref.mem_bank.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(state['labels'], ref.labels_bank)
  assert repeats > 0, 'repeated labeled examples compared'


def test_remixmatch_guess_and_rotation_match_usb():
  from jaxssl.methods import remixmatch

  num_classes, m, t = 4, 0.7, 0.5
  config = ml_collections.ConfigDict(dict(dist_align_momentum=m, temperature=t))
  align = _UsbDistAlignEMA(num_classes, m, 'uniform')  # 'gt': the balanced labeled split
  state = {'p_model': jnp.zeros(num_classes)}
  for step, (probs_u, _) in enumerate(_batches(num_classes, seed=4)):
    guess, state['p_model'] = remixmatch.guess_labels(
      state, jnp.asarray(probs_u, jnp.float32), jnp.asarray(step), config
    )
    sharp = align(probs_u, None) ** (1 / t)
    np.testing.assert_allclose(guess, sharp / sharp.sum(-1, keepdims=True), rtol=1e-4, atol=1e-6)
  # torchvision's rotate(img, 90 * k) turns counter-clockwise: the top-right pixel goes top-left.
  image = np.zeros((1, 3, 3, 1), np.float32)
  image[0, 0, 2] = 1.0
  turned = remixmatch.rotate(jnp.asarray(np.repeat(image, 4, 0)), jnp.arange(4))
  corners = [(0, 2), (0, 0), (2, 0), (2, 2)]  # 0, 90, 180, 270 degrees
  for k, (r, c) in enumerate(corners):
    assert turned[k, r, c, 0] == 1.0 and turned[k].sum() == 1.0


SIMMATCH_WARMUP = methods.get('simmatch').defaults()['bank_warmup_steps']


@pytest.mark.parametrize(
  'case, overrides, total',
  [
    # After the warm-up (tiny_config: none, τ = 0): λu = λin = 1.
    ('simmatch', {}, lambda m: m['sup'] + m['unsup'] + m['in']),
    # During it the instance loss is computed (and logged) but left out.
    ('simmatch', dict(bank_warmup_steps=SIMMATCH_WARMUP), lambda m: m['sup'] + m['unsup']),
    # No ramp (tiny_config): λu 1.5, λkl 0.5, λrot 0.5.
    ('remixmatch', {}, lambda m: m['sup'] + 1.5 * m['unsup'] + 0.5 * m['kl'] + 0.5 * m['rot']),
  ],
)  # fmt: skip
def test_each_term_enters_the_loss_with_its_weight(case, overrides, total):
  # The pieces above are checked against USB; this checks the objective adds them as USB does.
  from tests import helpers

  _, _, metrics = (
    helpers.first_steps(case, 1, **overrides) if overrides else helpers.first_steps(case)
  )
  m = {k.split('/')[-1]: float(v) for k, v in metrics[0].items() if k.startswith('loss/')}
  assert min(m.values()) > 0, m
  np.testing.assert_allclose(m['total'], total(m), rtol=1e-5)


@pytest.mark.parametrize(
  'case, weights',
  [
    ('vat', dict(lambda_u=2.0, entmin_weight=0.5)),  # metric names: loss/unsup, loss/entropy
    ('remixmatch', dict(lambda_u=3.0, lambda_kl=1.0)),  # λrot > 0 builds a head: a constant
    ('simmatch', dict(lambda_u=0.5, lambda_in=4.0)),
  ],
)
def test_loss_weights_are_inputs_of_the_step(case, weights):
  # Every loss weight is an input of the one compiled step (Method.hparams): stepping it with
  # other weights gives the same terms, summed with those weights.
  from tests import helpers

  run, _, metrics = helpers.first_steps(case)
  assert set(run.method.hparams) - {'threshold'} == set(weights)  # τ: tests/test_consistency.py
  _, _, again = helpers.run_steps(run.with_hparams(**weights), 1)
  assert run.train_step._cache_size() == 1
  term = lambda m: {k.split('/')[-1]: float(v) for k, v in m.items() if k.startswith('loss/')}
  before, after = term(metrics[0]), term(again[0])
  names = {'lambda_u': 'unsup', 'entmin_weight': 'entropy', 'lambda_kl': 'kl', 'lambda_in': 'in'}
  terms = {names[k]: v for k, v in weights.items()}
  for name in before:
    if name != 'total':
      np.testing.assert_allclose(after[name], before[name], rtol=1e-6)
  fixed = {'rot': run.config.get('lambda_rot', 0.0)}  # ReMixMatch's rotation loss, 0.5
  weighted = terms | {k: w for k, w in fixed.items() if k in after}
  expected = after['sup'] + sum(w * after[name] for name, w in weighted.items())
  np.testing.assert_allclose(after['total'], expected, rtol=1e-5)
  assert abs(after['total'] - before['total']) > 1e-3 * abs(before['total'])
