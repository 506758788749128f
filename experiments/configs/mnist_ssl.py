"""Every discriminative method on MNIST with 10, 40 or 100 labels (1, 4 or 10 per class), sized
for a laptop CPU: one cell of the few-label table is

  jaxssl train --config=experiments/configs/mnist_ssl.py:<method>,<labels> --config.seed=S \
    --workdir=runs/<method>_<labels>_s<S>

and the whole table (every method, label count and seed, resumable) is

  python experiments/sweep.py --config=experiments/configs/mnist_ssl.py \
    --methods=all --labels=10,40,100 --seeds=0,1,2 --workdir=runs/mnist_table

`<method>,<labels>[,<steps>]`; `all` labels every training image (54,210 of 60,000: classes
are cut to the smallest), the ceiling of the network:
  jaxssl train --config=experiments/configs/mnist_ssl.py:supervised,all,10000 \
    --config.batch_size=128 --workdir=runs/ceiling
Methods: supervised, pseudo_label, pi_model, mean_teacher, vat, mixmatch, uda, fixmatch,
flexmatch, freematch, softmatch, adamatch, dash, simmatch, remixmatch, and fixmatch_da: FixMatch
with distribution alignment (ReMixMatch, Berthelot et al. 2020), an option of fixmatch.py
(`--config.dist_align=True`) that is off in FixMatch's recipe and has its own row here because
with one label per class plain FixMatch locks onto a few classes. The seed draws the labeled
split, the init and every step.

Each method keeps its published recipe (the defaults in its file: thresholds, λu, sharpening,
MixUp, optimizer), except for what makes it fit a CPU and digits, the same for all:
- backbone `cnn` 16-32-64-64 with a flatten head (92 k parameters; README "Backbones"): 0.47 %
  test error with every label (the `all` command above), where the 16-32-64 average-pooled CNN
  of earlier versions had 1.79 %; no flips;
- the digit augmentation recipe (jaxssl/data/augment.py DIGITS) for every weak and strong view;
- 32 labeled + 3x32 unlabeled images a step (FixMatch: 64 + 7x64), STEPS steps (FixMatch:
  2^20), the learning-rate schedules compressed to them;
- Dash: a 200-step warm-up and ρ lowered every 50 steps (USB: 2,048 and 10,240 of 2^20);
- SimMatch: a 200-step bank warm-up (USB: 1,024) and a 128-wide projection hidden layer (USB: the
  backbone's feature width, 3,136 for this flatten head);
- ReMixMatch: 32 + 32 unlabeled images a step, its own μ = 1 (each unlabeled image gives a weak
  and two strong views, and a rotated one);
- VAT's ε = 2 (not tuned here): the default of the authors' MNIST code for the ICLR-2016 paper
  (takerum/vat `train_mnist_semisup.py`, an MLP on [0, 1] pixels as here), whose README runs
  100 labels with ε = 0.3 and supervised MNIST with 2.1. USB's default is 6; the authors' 2018
  code (takerum/vat_tf) uses 8-10 on ZCA-whitened CIFAR-10 and 2.5-3.5 on SVHN;
- horizons in steps, not fractions of the run, so a longer run keeps them: batch-norm momentum
  0.99, unsupervised-loss ramps over RAMP_STEPS (USB's ramps span 0.4 of 2^20 steps, MixMatch's
  16,384: compressed, they would last the whole run), and an EMA of decay 0.99, not FixMatch's
  0.999: the evaluated average takes the batch-norm statistics of the current weights, and over
  the first thousands of steps the weights move too fast for a 1,000-step average to match them
  (measured, fixmatch_da with 10 labels, seed 1, step 1,500: EMA 0.999 44.5 % error, the raw
  weights 4.4 %).
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
  'fixmatch_da',
  'flexmatch',
  'freematch',
  'softmatch',
  'adamatch',
  'dash',
  'simmatch',
  'remixmatch',
)
# Rows of the table that are a method with one of its options on.
VARIANTS = {'fixmatch_da': ('fixmatch', dict(dist_align=True))}
LABELS = ('10', '40', '100')
ALL = 5421  # labels per class when every train image is labeled: MNIST's smallest class
STEPS = 1500
RAMP_STEPS = 400


def get_config(arg: str = 'fixmatch,100'):
  method, labels, steps = (arg.split(',') + [str(STEPS)])[:3]
  if method not in METHODS or labels not in (*LABELS, 'all') or not steps.isdigit():
    raise ValueError(
      f"expected '<method>,<{'|'.join(LABELS)}|all>[,<steps>]' with a method of {METHODS}"
    )
  method, options = VARIANTS.get(method, (method, {}))
  config = base_config(method)
  config.update(options)
  config.dataset = 'mnist'
  config.labels_per_class = ALL if labels == 'all' else int(labels) // 10
  config.backbone = 'cnn'
  config.cnn_widths = (16, 32, 64, 64)
  config.cnn_head = 'flatten'
  config.bn_momentum = 0.99
  config.ema_decay = 0.99
  config.flip = False
  config.batch_size = 32
  config.uratio = 3
  config.num_steps = int(steps)
  config.log_every = 50
  config.eval_every = 250
  config.checkpoint_every = 500
  if 'ramp_steps' in config:
    config.ramp_steps = RAMP_STEPS
  if method == 'dash':  # USB: 2,048 warm-up steps and ρ lowered every 10,240 of 2^20 steps
    config.warmup_steps = 200
    config.rho_update_every = 50  # ρ reaches ρ_min in ~15 periods: by the middle of the run
  if method == 'simmatch':
    config.bank_warmup_steps = 200  # USB: the first epoch, 1,024 of 2^20 steps
    config.proj_hidden = 128  # USB: the feature width, here the flatten head's 3,136
  if method == 'remixmatch':
    config.uratio = 1  # its recipe's μ (USB, the paper): one unlabeled image per labeled one
  if method == 'vat':
    config.eps = 2.0  # takerum/vat's default for MNIST (its 100-label command: 0.3); USB: 6.0
  return config
