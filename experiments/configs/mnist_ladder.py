"""Ladder network (Rasmus et al. 2015), full MLP ladder, MNIST with 100 or 1000 labels.

Paper (Table 1): 100 labels 1.06 % ± 0.37, 1000 labels 0.84 % ± 0.08 test error.
Recipe: batch 100 labeled + 100 unlabeled, Adam 0.002 for 100 epochs then linear decay to 0 over
50 more (150 epochs), noise 0.3 at every layer, denoising weights 1000, 10, 0.1 x 5.
  jaxssl train --config=experiments/configs/mnist_ladder.py --workdir=runs/mnist_ladder
  jaxssl train --config=experiments/configs/mnist_ladder.py:1000 --workdir=runs/ladder_1000
  jaxssl train --config=experiments/configs/mnist_ladder.py:quick --workdir=runs/ladder_quick
The quick variant keeps the schedule's shape over 15 epochs. On a GPU or TPU, 100 steps a compiled
call (`steps_per_call`; 1 on CPU): the same numbers to float rounding, faster where the host
bounds the step.
"""

from jaxssl.config import base_config

VARIANTS = {'100': (10, 150), '1000': (100, 150), 'quick': (10, 15)}


def get_config(variant: str = '100'):
  if variant not in VARIANTS:
    raise ValueError(f'variant must be one of {", ".join(VARIANTS)}, got {variant!r}')
  per_class, epochs = VARIANTS[variant]
  config = base_config('ladder')
  config.dataset = 'mnist'
  config.labels_per_class = per_class
  config.batch_size = 100
  steps_per_epoch = 60_000 // config.batch_size
  config.num_steps = epochs * steps_per_epoch
  config.eval_every = config.checkpoint_every = steps_per_epoch * (1 if variant == 'quick' else 10)
  config.steps_per_call = 0  # auto: 100 on a GPU or TPU, 1 on CPU
  return config
