"""Every discriminative method on MNIST with 10 or 100 labels, sized for a laptop CPU.

`<method>,<labels>[,<steps>]`, e.g.
  jaxssl train --config=experiments/configs/mnist_ssl.py:fixmatch,10 --workdir=runs/fixmatch_10
  jaxssl train --config=experiments/configs/mnist_ssl.py:supervised,100 --workdir=runs/sup_100
  jaxssl train --config=experiments/configs/mnist_ssl.py:fixmatch,10,5000 --workdir=runs/fm_10_5k
Methods: supervised, pseudo_label, pi_model, mean_teacher, vat, mixmatch, uda, fixmatch, flexmatch.

Each method keeps its published recipe (the defaults in its file: thresholds, λu, ramps,
sharpening, MixUp, optimizer) and all share what makes it fit a CPU: the small CNN
(16-32-64, no flips for digits), 32 labeled + 3x32 unlabeled images per step, 1000 steps with the
schedules compressed to them (or to <steps>), and EMA and batch-norm horizons scaled down to match.
FixMatch's paper has no MNIST row; the aims are ≤ 2 % error with 10 labels, ≤ 1 % with 100.
"""

from jaxssl.config import base_config

METHODS = (
  'supervised',
  'pseudo_label',
  'pi_model',
  'mean_teacher',
  'vat',
  'mixmatch',
  'uda',
  'fixmatch',
  'flexmatch',
)


def get_config(arg: str = 'fixmatch,100'):
  method, labels, steps = (arg.split(',') + ['1000'])[:3]
  if method not in METHODS or labels not in ('10', '100') or not steps.isdigit():
    raise ValueError(f"expected '<method>,<10|100>[,<steps>]' with a method of {METHODS}")
  config = base_config(method)
  config.dataset = 'mnist'
  config.labels_per_class = int(labels) // 10
  config.backbone = 'cnn'
  config.cnn_widths = (16, 32, 64)
  # Horizons scaled to a 1000-step run: FixMatch's EMA 0.999 spans 0.1 % of its 2^20 steps but
  # would average the whole of this run; BN statistics at 0.99 lag the fast-moving weights.
  config.bn_momentum = 0.9
  config.ema_decay = 0.99
  config.flip = False
  config.batch_size = 32
  config.uratio = 3
  config.num_steps = int(steps)
  config.log_every = 50
  config.eval_every = config.checkpoint_every = max(config.num_steps // 2, 1)
  if method == 'mixmatch':
    # The official ramp of λu = 75 spans 16k steps, 1/64 of its 2^20; compressed to 1/64 of 1000
    # steps it would reach 75 at step 16, while guesses are still random, and collapse (measured:
    # 70 % error at 100 labels). Ramp over 40 % like the Π-model and Mean Teacher instead.
    config.ramp_fraction = 0.4
  if method == 'vat':
    config.eps = 2.0  # the VAT paper's ε for MNIST (6.0 is its CIFAR-10 value)
  return config
