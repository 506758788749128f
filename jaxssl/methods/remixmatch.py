"""ReMixMatch (Berthelot et al. 2020, arXiv 1911.09785) as USB (semilearn/algorithms/remixmatch)
trains it on CIFAR, SVHN and STL-10.

MixMatch with four changes:
- distribution alignment: the weak view's prediction is scaled by p_target / p_model (p_model the
  running mean prediction, USB's DistAlignEMAHook, momentum 0.999; p_target the labeled class
  distribution, uniform for jaxssl's class-balanced splits), then sharpened (T = 0.5): the guess;
- augmentation anchoring: the guess of the weak view is the target of `num_strong` strong views
  (RandAugment or CTAugment, + Cutout; USB: 2, the paper: 8);
- the labeled batch, the strong views and the weak view with their (guessed) labels are mixed
  (MixUp, α = 0.75, λ' = max(λ, 1 − λ)), and both the labeled and the unlabeled mixed parts take
  cross-entropy (MixMatch: squared error for the unlabeled part);
- a pre-mixup loss: the first strong view, unmixed, against the guess (λkl = 0.5), and a
  self-supervised rotation loss: that view rotated by 0, 90, 180 or 270 degrees, the angle
  predicted by a linear head on the backbone's features (λrot = 0.5).
λu = 1.5 and λkl ramp up linearly over 16,384 steps (USB: 1/64 of 2^20; the authors' code: 1,024
kimg); λrot is constant. SGD Nesterov, lr 0.03·cos(7πk/16K), weight decay 5e-4, EMA 0.999.

As USB: the weak view's forward (no gradient), the unmixed strong view's and the rotated one's use
the batch statistics but leave the running ones to the mixed pass; each image is rotated by an
angle of its own.

Deviations: MixUp draws λ per example (the authors' code, as mixmatch.py) where USB draws one per
batch; all mixed images go through one forward (USB: one labeled-sized chunk at a time, batch norm
statistics per chunk; the authors' code interleaves them), as jaxssl's MixMatch.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from jaxssl import core
from jaxssl.errors import UserError
from jaxssl.methods import DataSpec, Method, fixmatch, mixmatch
from jaxssl.methods import _classifier as C


def defaults() -> dict:
  unused = ('threshold', 'dist_align')  # no threshold; alignment always on
  base = {k: v for k, v in fixmatch.defaults().items() if k not in unused}
  return base | dict(
    lambda_u=1.5,  # weight of the mixed unlabeled cross-entropy (USB's ulb_loss_ratio)
    lambda_kl=0.5,  # weight of the pre-mixup loss on the first strong view
    lambda_rot=0.5,  # weight of the rotation loss; 0 removes the rotation head
    ramp_steps=16_384,  # linear ramp of lambda_u and lambda_kl
    temperature=0.5,  # sharpening of the aligned guess
    mixup_alpha=0.75,
    num_strong=2,  # strong views anchored to each weak one (USB: 2; the paper: 8)
    dist_align_momentum=0.999,  # of p_model
  )


def rotate(images, quarter_turns):
  """Each (square) image turned counter-clockwise by its number of quarter turns."""
  turned = [jnp.rot90(images, k, axes=(1, 2)) for k in range(4)]
  pick = quarter_turns[:, None, None, None]
  return sum(jnp.where(pick == k, t, 0.0) for k, t in enumerate(turned))


def guess_labels(state, probs_w, step, config):
  """(sharpened aligned guess, new p_model)."""
  uniform = jnp.full(probs_w.shape[-1], 1.0 / probs_w.shape[-1])
  aligned, p_model = fixmatch.ema_alignment(
    state['p_model'], probs_w, uniform, step, config.dist_align_momentum
  )
  return mixmatch.sharpen(aligned, config.temperature), p_model


def objective(config, num_classes: int):
  def fn(net, params, state, batch, key, step, hp):
    k_l, k_w, k_s, k_mix, k_rot = jax.random.split(key, 5)
    x_l = C.labeled_images(config, batch, k_l)
    u_w = C.weak(config, batch['x_u'], k_w)
    strong = [
      fixmatch.strong_view(config, state, batch['x_u'], k)
      for k in jax.random.split(k_s, config.num_strong)
    ]
    logits_w = jax.lax.stop_gradient(net(params, state['rest'], u_w, train=True)[0])
    guess, p_model = guess_labels(state, jax.nn.softmax(logits_w), step, config)
    y_l = jax.nn.one_hot(batch['y_l'], num_classes)
    x_all = jnp.concatenate([x_l, *strong, u_w])
    y_all = jnp.concatenate([y_l, *[guess] * (config.num_strong + 1)])
    mixed_x, mixed_y = mixmatch.mixup(k_mix, x_all, y_all, config.mixup_alpha)
    logits, rest = net(params, state['rest'], mixed_x, train=True)
    n = len(x_l)
    sup = C.cross_entropy(logits[:n], mixed_y[:n]).mean()
    unsup = C.cross_entropy(logits[n:], mixed_y[n:]).mean()
    weight = C.ramp(step, config.ramp_steps)
    logits_s = net(params, state['rest'], strong[0], train=True)[0]
    metrics, extra = {}, 0.0
    if config.lambda_rot > 0:
      turns = jax.random.randint(k_rot, (len(strong[0]),), 0, 4)
      x_rot = rotate(strong[0], turns)
      (_, heads), _ = net(params, state['rest'], x_rot, train=True, method='with_heads')
      rot_loss = C.cross_entropy(heads['rot'], turns).mean()
      rot_acc = jnp.mean(jnp.argmax(heads['rot'], -1) == turns)
      metrics = {'loss/rot': rot_loss, 'monitor/rot_acc': rot_acc}
      extra = config.lambda_rot * rot_loss  # a constant: λrot > 0 decides the head
    kl = C.cross_entropy(logits_s, guess).mean()
    updates, cta_monitors = fixmatch.augment_updates(config, net, state, x_l, batch, key)
    monitors = core.monitors(batch, None, jnp.log(guess)) | cta_monitors
    loss, aux = C.combine(
      rest, sup, unsup, hp['lambda_u'] * weight, monitors, **{'loss/kl': kl}, **metrics
    )
    loss = loss + hp['lambda_kl'] * weight * kl + extra
    return loss, aux._replace(updates=updates | {'p_model': p_model})

  return fn


def make(config, data: DataSpec) -> Method:
  h, w, _ = data.image_shape
  if config.lambda_rot > 0 and h != w:
    raise UserError(f'remixmatch rotates images by 90 degrees: they must be square, got {h}x{w}')
  if config.num_strong < 1:
    raise UserError(f'num_strong must be at least 1, got {config.num_strong}')
  augment = fixmatch.augment_state(config)

  def rotation_head(features, rngs):
    init = jax.nn.initializers.glorot_normal()
    return {'rot': nnx.Linear(features, 4, kernel_init=init, rngs=rngs)}

  return C.make(
    config,
    data,
    objective(config, data.num_classes),
    unlabeled_views=('weak',) + ('strong',) * config.num_strong,
    init_extra=lambda: {'p_model': jnp.zeros(data.num_classes)} | augment,
    heads=rotation_head if config.lambda_rot > 0 else None,
    step_inputs=('lambda_u', 'lambda_kl'),
  )
