"""The paper-length configs resolve to the published recipes, knob by knob.

Each expected value cites where it comes from, so a config edit that drifts from the paper fails
here rather than in a week-long run whose number then disagrees with the table.
"""

from pathlib import Path

from jaxssl import cli

CONFIGS = Path(__file__).parents[1] / 'experiments' / 'configs'
MNIST_TRAIN = 60_000


def _resolved(spec: str):
  return cli.load_config(f'{CONFIGS / spec}', [])


def _epochs(config) -> float:
  return config.num_steps * config.batch_size / MNIST_TRAIN


def test_improved_gan_is_the_authors_mnist_recipe():
  # openai/improved-gan, mnist_svhn_cifar10/train_mnist_feature_matching.py (Salimans et al. 2016).
  c = _resolved('mnist_improved_gan.py')
  expected = dict(
    dataset='mnist',
    labels_per_class=10,  # --count 10
    batch_size=100,  # --batch_size 100, labeled and unlabeled
    uratio=2,  # D's 100 unlabeled and ...
    generator_batch='separate',  # ... G's own 100: train_batch_gen(trainx_unl2[...])
    disc_widths=(1000, 500, 250, 250, 250),  # DenseLayer widths, then 10 logits
    gen_widths=(500, 500),  # softplus + batch norm, then 784 sigmoid
    z_dim=100,  # uniform noise of size 100
    input_noise=0.3,  # GaussianNoiseLayer sigma=0.3 on the input
    hidden_noise=0.5,  # sigma=0.5 after each hidden layer
    lr=0.003,  # lr = 0.003, constant for MNIST (CIFAR decays; MNIST does not)
    lr_decay_fraction=0.0,
    adam_b1=0.5,  # adam_updates(..., mom1=0.5)
    unsup_weight=1.0,  # --unlabeled_weight 1
    generator_loss='feature_matching',
    polyak_decay=0.9999,  # a <- a + 0.0001 (p - a)
    data_init=True,  # init_param(trainx[:500])
    init_examples=500,
  )
  assert {k: c[k] for k in expected} == expected
  assert _epochs(c) == 300  # for epoch in range(300)


def test_ladder_is_the_authors_mnist_100_recipe():
  # CuriousAI/ladder README, "MNIST 100 labels, Full": run.py train --encoder-layers
  # 1000-500-250-250-250-10 --denoising-cost-x 1000,10,0.1,0.1,0.1,0.1,0.1 --labeled-samples 100
  # --unlabeled-samples 60000; run.py defaults: lr 0.002, 150 epochs, decay after 0.67 of them,
  # noise std 0.3, batch 100 (Rasmus et al. 2015, section 4.1).
  c = _resolved('mnist_ladder.py')
  expected = dict(
    dataset='mnist',
    labels_per_class=10,
    batch_size=100,
    uratio=1,
    widths=(1000, 500, 250, 250, 250),
    denoising_weights=(1000.0, 10.0, 0.1, 0.1, 0.1, 0.1, 0.1),
    noise_std=0.3,
    lr=0.002,
  )
  assert {k: c[k] for k in expected} == expected
  assert _epochs(c) == 150
  assert abs(c.lr_decay_fraction - 50 / 150) < 1e-9  # linear to 0 over the last 50 epochs


def test_quick_variants_shorten_only_the_horizon():
  # The default run and the quick Ladder differ from the paper in length (and the GAN in its
  # Polyak horizon, which must fit inside the shorter run), nothing else.
  for spec, changed in [
    (
      'mnist_improved_gan.py',
      {'num_steps', 'eval_every', 'checkpoint_every', 'polyak_decay', 'generator_batch', 'uratio'},
    ),
    ('mnist_ladder.py', {'num_steps', 'eval_every', 'checkpoint_every'}),
  ]:
    full, quick = _resolved(spec).to_dict(), _resolved(f'{spec}:quick').to_dict()
    assert {k for k in full if full[k] != quick[k]} <= changed, spec
