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
    gen_output_init='glorot_uniform',  # l2normalize(LL.DenseLayer(...)): Lasagne's default W
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
  # Polyak horizon, which must fit inside the shorter run, its batch sharing and its G init, each
  # measured in the config's docstring), nothing else.
  for spec, changed in [
    (
      'mnist_improved_gan.py',
      {
        *('num_steps', 'eval_every', 'checkpoint_every', 'polyak_decay'),
        *('generator_batch', 'uratio', 'gen_output_init'),
      },
    ),
    ('mnist_ladder.py', {'num_steps', 'eval_every', 'checkpoint_every'}),
  ]:
    full, quick = _resolved(spec).to_dict(), _resolved(f'{spec}:quick').to_dict()
    assert {k for k in full if full[k] != quick[k]} <= changed, spec


def test_m1_m2_is_the_authors_mnist_100_recipe():
  # dpkingma/nips14-ssl: run_2layer_ssl.py for 100 labels calls learn_yz_x_ss.main(3000, 100,
  # 'mnist_2layer', n_z=50, n_hidden=(300,), alpha=0.1, n_minibatches=100): 3,000 passes, M2 with
  # one hidden layer of 300 on the M1 units whose posterior mean varies (std > 0.1 over 1,000
  # unlabeled images), AdaM(alpha=3e-4, beta1=0.9, beta2=0.999), init_w(1e-3); M1 is
  # models/mnist_z_x_50-500-500_longrun (gpulearn_z_x.py: 50-500-500, softplus, Bernoulli
  # p(x|z) on pixels resampled as binary, lr 3e-4).
  c = _resolved('mnist_vae_m2.py:m1m2')
  expected = dict(
    dataset='mnist',
    labels_per_class=10,
    stacked=True,
    m1_widths=(500, 500),
    m1_latent=50,
    m1_keep_std=0.1,
    m1_lr=3e-4,
    binarize=True,
    widths=(300,),
    latent=50,
    alpha=0.1,  # beta = alpha * N / N_l on the labeled log q(y|x)
    lr=3e-4,
    adam_b1=0.9,
    adam_b2=0.999,
    init_scale=1e-3,
    lr_decay_fraction=0.0,
  )
  assert {k: c[k] for k in expected} == expected
  # 100 minibatches a pass: 1 labeled and ~500 unlabeled images each (theirs: 499 of the
  # 49,900 unlabeled of a 50,000 training split); here every step sees all 100 labeled ones.
  assert c.batch_size * c.uratio == 500
  m2_epochs = c.num_steps * (1 - c.m1_fraction) * c.batch_size * c.uratio / MNIST_TRAIN
  assert round(m2_epochs) == 3000
  # The same M2 phase on an M1 trained once (init_from), as the authors reused theirs.
  reuse = _resolved('mnist_vae_m2.py:m2_on_m1_paper')
  assert {k: reuse[k] for k in expected if k != 'm1_lr'} == {
    k: v for k, v in expected.items() if k != 'm1_lr'
  }
  assert reuse.m1_fraction == 0 and reuse.num_steps == c.num_steps * (1 - c.m1_fraction)
  # M2 alone (the paper's section 4.1: one hidden layer of 500, 50 latents, same optimiser).
  m2 = _resolved('mnist_vae_m2.py:m2')
  assert (m2.stacked, m2.widths, m2.latent, m2.alpha, m2.lr) == (False, (500,), 50, 0.1, 3e-4)
  assert round(m2.num_steps * m2.batch_size * m2.uratio / MNIST_TRAIN) == 3000
