"""SimMatch (Zheng et al. 2022, arXiv 2203.06915) as USB (semilearn/algorithms/simmatch) trains it
on CIFAR, SVHN and STL-10.

FixMatch with a labeled memory bank: a projection head maps the backbone's features to
L2-normalised embeddings (`epass`: the mean of three heads, then normalised, as every USB
classic_cv yaml); the bank holds one embedding per labeled example (K = the labeled set's size),
moved towards that example's current embedding (normalise(0.7·old + 0.3·new)) each time the labeled
batch holds it. The weak view's embedding against the bank gives a similarity distribution q over
the labeled examples (softmax of cosine / T, T = 0.1):
- label propagation: the weak view's class probabilities (aligned to a uniform marginal through a
  queue of the last `da_len` batch means, USB's DistAlignQueueHook) are smoothed with the class
  mass of q, α·p + (1 − α)·Σ_{k: label k = c} q_k (α = 0.9); these soft pseudo-labels, kept
  where their maximum reaches τ = 0.95, are the strong view's cross-entropy targets;
- instance consistency: q scaled by each bank entry's class probability (p[label k]) and
  renormalised is the target of the strong view's similarity distribution (λin = 1).
During the first `bank_warmup_steps` (USB: its first epoch, 1,024 of 2^20 steps) the bank fills
but neither the smoothing nor the instance loss is used.

As USB for these datasets (`use_ema_teacher=False`): the teacher is the online model's
stop-gradient output of the same forward pass (labeled, weak and strong views together), and the
bank takes the labeled batch's embeddings from that pass.

Deviations: where a labeled example appears twice in one batch (K < batch size), its last
occurrence updates the bank (PyTorch's indexed assignment leaves the winner unspecified on GPU);
the initial random bank (overwritten during the warm-up) is drawn from a fixed key;
`proj_hidden` may narrow the projection's hidden layer (USB: the feature width, the default
here), which the MNIST config uses because its flatten head has 3,136 features.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from jaxssl import core
from jaxssl.methods import DataSpec, Method, fixmatch
from jaxssl.methods import _classifier as C


def defaults() -> dict:
  unused = ('dist_align', 'dist_align_momentum')  # its own alignment, below
  base = {k: v for k, v in fixmatch.defaults().items() if k not in unused}
  return base | dict(
    temperature=0.1,  # T of the similarity softmax (USB's yamls; its argparse default is 0.5)
    proj_size=128,  # embedding width
    proj_hidden=0,  # projection hidden width; 0: the backbone's feature width (USB)
    epass=True,  # the mean of three projection heads (USB's classic_cv yamls)
    lambda_in=1.0,  # weight of the instance-consistency loss
    smoothing_alpha=0.9,  # α: weight of the class probabilities in the smoothed pseudo-labels
    da_len=32,  # batch means in the distribution-alignment queue (USB's yamls; argparse: 256)
    bank_momentum=0.7,  # of the bank's entries (USB's ema_bank); 0 replaces them
    bank_warmup_steps=1024,  # no smoothing or instance loss before (USB: the first epoch)
  )


class Projection(nnx.Module):
  """One head, or the mean of three (EPASS), on the backbone's features; L2-normalised."""

  def __init__(self, features: int, hidden: int, size: int, heads: int, *, rngs: nnx.Rngs):
    mlp = lambda: nnx.Sequential(
      nnx.Linear(features, hidden, rngs=rngs), jax.nn.relu, nnx.Linear(hidden, size, rngs=rngs)
    )
    self.mlps = nnx.List([mlp() for _ in range(heads)])

  def __call__(self, feat):
    z = sum(mlp(feat) for mlp in self.mlps) / len(self.mlps)
    return z / jnp.linalg.norm(z, axis=-1, keepdims=True)


def init_state(config, data: DataSpec) -> dict:
  bank = jax.random.normal(jax.random.key(0), (data.num_labeled, config.proj_size))
  return {
    'mem_bank': bank / jnp.linalg.norm(bank, axis=-1, keepdims=True),  # (K, proj_size)
    'labels_bank': jnp.zeros(data.num_labeled, jnp.int32),
    'da_queue': jnp.zeros((config.da_len, data.num_classes)),
  }


def align_queue(queue, probs, step):
  """USB's DistAlignQueueHook, uniform target: the batch mean enters the queue (zeros until
  filled), probs · (1/C + 1e-6) / (mean of the queue + 1e-6), renormalised."""
  queue = queue.at[step % len(queue)].set(probs.mean(0))
  aligned = probs * (1.0 / probs.shape[-1] + 1e-6) / (queue.mean(0) + 1e-6)
  return aligned / aligned.sum(-1, keepdims=True), queue


def similarity(feat_w, feat_s, bank, labels_bank, probs, temperature: float, alpha: float):
  """(smoothed class probabilities of the weak views, instance-consistency loss): USB's
  teacher/student distributions over the bank."""
  num_classes = probs.shape[-1]
  teacher_orig = jax.nn.softmax(feat_w @ bank.T / temperature)  # (B, K)
  teacher = teacher_orig * probs[:, labels_bank]
  teacher = teacher / teacher.sum(-1, keepdims=True)
  aggregated = teacher_orig @ jax.nn.one_hot(labels_bank, num_classes)  # class mass of q
  smoothed = alpha * probs + (1 - alpha) * aggregated if alpha < 1 else probs
  student = jax.nn.log_softmax(feat_s @ bank.T / temperature)
  return smoothed, jnp.mean(jnp.sum(-teacher * student, -1))


def update_bank(bank, labels_bank, feat_l, y_l, i_l, momentum: float):
  """Moves the bank entries of the labeled batch towards its embeddings (last occurrence wins)."""
  n = len(i_l)
  later = (i_l[None, :] == i_l[:, None]) & (jnp.arange(n)[None, :] > jnp.arange(n)[:, None])
  slot = jnp.where(later.any(1), len(bank), i_l)  # dropped: a later row holds the same example
  new = momentum * bank[i_l] + (1 - momentum) * feat_l
  new = new / jnp.linalg.norm(new, axis=-1, keepdims=True)
  return bank.at[slot].set(new, mode='drop'), labels_bank.at[slot].set(y_l, mode='drop')


def objective(config):
  def fn(net, params, state, batch, key, step, hp):
    x_l, u_w, u_s = fixmatch.views(config, state, batch, key)
    (logits_l, logits_w, logits_s), outs, rest = C.forward_heads(
      net, params, state, (x_l, u_w, u_s)
    )
    feat_l, feat_w, feat_s = outs['proj']
    feat_l, feat_w = jax.lax.stop_gradient(feat_l), jax.lax.stop_gradient(feat_w)
    sup = C.cross_entropy(logits_l, batch['y_l']).mean()
    probs_w = jax.nn.softmax(jax.lax.stop_gradient(logits_w))
    aligned, queue = align_queue(state['da_queue'], probs_w, step)
    bank, labels_bank = state['mem_bank'], state['labels_bank']
    smoothed, in_loss = similarity(
      feat_w, feat_s, bank, labels_bank, aligned, config.temperature, config.smoothing_alpha
    )
    warm = step < config.bank_warmup_steps
    targets = jnp.where(warm, aligned, smoothed)
    mask = (jnp.max(targets, -1) >= hp['threshold']).astype(jnp.float32)
    unsup = jnp.mean(C.cross_entropy(logits_s, targets) * mask)
    lambda_in = jnp.where(warm, 0.0, hp['lambda_in'])
    new_bank, new_labels = update_bank(
      bank, labels_bank, feat_l, batch['y_l'], batch['i_l'], config.bank_momentum
    )
    updates = {'mem_bank': new_bank, 'labels_bank': new_labels, 'da_queue': queue}
    more, cta_monitors = fixmatch.augment_updates(config, net, state, x_l, batch, key)
    monitors = core.monitors(batch, logits_l, jnp.log(targets + 1e-12), mask) | cta_monitors
    loss, aux = C.combine(rest, sup, unsup, hp['lambda_u'], monitors, **{'loss/in': in_loss})
    return loss + lambda_in * in_loss, aux._replace(updates=updates | more)

  return fn


def make(config, data: DataSpec) -> Method:
  augment = fixmatch.augment_state(config)
  heads = 3 if config.epass else 1

  def projection(features, rngs):
    hidden = config.proj_hidden or features
    return {'proj': Projection(features, hidden, config.proj_size, heads, rngs=rngs)}

  return C.make(
    config,
    data,
    objective(config),
    unlabeled_views=('weak', 'strong'),
    init_extra=lambda: init_state(config, data) | augment,
    heads=projection,
    step_inputs=('lambda_u', 'lambda_in', 'threshold'),
  )
