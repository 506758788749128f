"""Every experiment config resolves: known keys, right types, a method that exists."""

import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments.configs import (
  fixmatch_reference,
  mnist_ladder,
  mnist_ssl,
  mnist_vae_m2,
  usb_reference,
)
from jaxssl import config as config_lib
from jaxssl import methods, parallel
from jaxssl.cli import load_config
from jaxssl.config import resolve
from jaxssl.data import datasets
from jaxssl.errors import UserError
from jaxssl.train import build

VARIANTS = {
  'mnist_improved_gan': ('full', 'quick'),
  'mnist_supervised': ('full', 'quick'),
  'mnist_vae_m2': tuple(mnist_vae_m2.VARIANTS),
  'mnist_ladder': tuple(mnist_ladder.VARIANTS),
  'mnist_ssl': (
    *(f'{m},{n}' for m in mnist_ssl.METHODS for n in mnist_ssl.LABELS),
    'fixmatch,10,99',
  ),
  'fixmatch_reference': fixmatch_reference.VARIANTS,
  'usb_reference': usb_reference.VARIANTS,
}
CASES = [(name, v) for name, variants in VARIANTS.items() for v in variants]


def test_every_config_file_is_listed():
  files = {p.stem for p in (Path(__file__).parents[1] / 'experiments' / 'configs').glob('*.py')}
  assert files - {'__init__'} == set(VARIANTS)


@pytest.mark.parametrize('name, variant', CASES)
def test_config_resolves(name, variant):
  module = __import__(f'experiments.configs.{name}', fromlist=['get_config'])
  resolve(module.get_config(variant))


@pytest.mark.parametrize('name', ['mnist_improved_gan', 'mnist_ladder'])
def test_mlp_recipes_take_100_steps_a_call_off_cpu_only(name, monkeypatch):
  # A GPU's step of these MLPs is bound by the host; on CPU the recorded runs' commands must
  # still repeat them bit for bit, so one step a call there. The config itself must not ask for
  # the backend: a multi-process run loads it before jax.distributed.initialize.
  module = __import__(f'experiments.configs.{name}', fromlist=['get_config'])
  asked = []
  monkeypatch.setattr(jax, 'default_backend', lambda: asked.append(1) or 'cpu')
  config = resolve(module.get_config())
  assert config.steps_per_call == 0 and not asked
  assert config_lib.steps_per_call(config) == 1 and asked
  monkeypatch.setattr(jax, 'default_backend', lambda: 'gpu')
  assert config_lib.steps_per_call(config) == 100
  assert config_lib.steps_per_call(resolve(mnist_ssl.get_config('fixmatch,10'))) == 1
  with pytest.raises(UserError, match='steps_per_call must be positive or 0'):
    resolve({**config.to_dict(), 'steps_per_call': -1})
  monkeypatch.setattr(jax, 'default_backend', lambda: 'cpu')
  short = {**config.to_dict(), 'num_steps': 10, 'init_examples': 100, 'batch_size': 96}
  assert build(short, dataset=_shaped_like('mnist')).config.steps_per_call == 1  # decided here


def test_mnist_ssl_labels_and_fixmatch_recipe():
  assert resolve(mnist_ssl.get_config('fixmatch,10')).labels_per_class == 1
  config = resolve(fixmatch_reference.get_config('cifar10,40'))
  assert (config.labels_per_class, config.batch_size, config.uratio) == (4, 64, 7)
  assert (config.threshold, config.lr, config.weight_decay, config.ema_decay) == (
    0.95,
    0.03,
    5e-4,
    0.999,
  )
  assert config.num_steps == 2**20 and config.backbone == 'wrn28_2'
  c100 = resolve(fixmatch_reference.get_config('cifar100,400'))
  assert (c100.backbone, c100.labels_per_class, c100.weight_decay) == ('wrn28_8', 4, 1e-3)
  assert not resolve(fixmatch_reference.get_config('svhn,250')).flip
  with pytest.raises(ValueError):
    mnist_ssl.get_config('fixmatch,7')


def test_usb_reference_is_fixmatchs_recipe_with_each_methods_knobs():
  fixmatch = resolve(fixmatch_reference.get_config('cifar100,400'))
  for method in usb_reference.KNOBS:
    config = resolve(usb_reference.get_config(f'{method},cifar100,400'))
    assert config.method == method and config.backbone == 'wrn28_2'
    same = ('lr', 'weight_decay', 'batch_size', 'uratio', 'num_steps', 'ema_decay', 'lambda_u')
    same = [k for k in same if k not in usb_reference.KNOBS[method]]  # ReMixMatch's μ and λu
    assert all(config[k] == fixmatch[k] for k in same), method
    assert all(config[k] == v for k, v in usb_reference.KNOBS[method].items()), method
  assert usb_reference.PUBLISHED['softmatch', 'svhn,40'] == ('', '2.31±0.0')
  assert usb_reference.PUBLISHED['remixmatch', 'cifar100,400'] == ('44.28±2.06', '57.1±0.0')
  remix = resolve(usb_reference.get_config('remixmatch,cifar10,40'))
  assert (remix.uratio, remix.lambda_u, remix.weight_decay) == (1, 1.5, 5e-4)


def _shaped_like(name: str, n: int = 1000) -> datasets.Dataset:
  """A few blank images shaped like dataset `name`: lowering a step needs shapes, not pixels."""
  shape, classes = datasets.SHAPES[name][:2]
  images = np.zeros((n, *shape), np.uint8)
  labels = (np.arange(n) % classes).astype(np.int32)
  return datasets.Dataset(name, classes, images, labels, images[:100], labels[:100])


def _lower_reference_step(name: str, method: str = 'fixmatch'):
  variant = next(v for v in fixmatch_reference.VARIANTS if v.startswith(f'{name},'))
  config = fixmatch_reference.get_config(variant)
  if method == 'fixmatch+cta':
    config = fixmatch_reference.get_config(f'{variant},cta')
  elif method != 'fixmatch':
    config = usb_reference.get_config(f'{method},{variant}')
  run = build(config, dataset=_shaped_like(config.dataset))  # every device: the sharded step
  batch = {
    k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=parallel.batch_sharding(run.mesh))
    for k, v in run.pipeline.host_batch(0).items()
  }
  return run.train_step.lower(run.abstract_state, batch)


# The CIFAR/SVHN recipes (WRN-28-2/-8 on 3 channels, flips on or off, B = 64, μ = 7) traced and
# lowered from shapes alone, so a change that breaks them fails here and not after a download.
@pytest.mark.parametrize('name', fixmatch_reference.DATASETS)
def test_reference_step_lowers_from_shapes(name):
  text = _lower_reference_step(name).as_text()
  assert 'stablehlo.convolution' in text


@pytest.mark.parametrize(
  'method', ['freematch', 'softmatch', 'adamatch', 'dash', 'simmatch', 'remixmatch', 'fixmatch+cta']
)
def test_newer_methods_reference_step_lowers_from_shapes(method):
  assert 'stablehlo.convolution' in _lower_reference_step('cifar10', method).as_text()


@pytest.mark.slow
@pytest.mark.parametrize('name', fixmatch_reference.DATASETS)
def test_reference_step_compiles_from_shapes(name):
  # XLA itself (minutes for WRN-28-8 on 2 cores): passes if it compiles.
  _lower_reference_step(name).compile()


@pytest.mark.parametrize('name', VARIANTS)
def test_config_file_loads_by_its_path_alone(name, monkeypatch, tmp_path):
  # `jaxssl train --config=FILE` loads a config by its path, from any directory, where this
  # repository's `experiments` package is not importable (usb_reference.py once imported it and
  # failed there, while the imports above passed).
  root = Path(__file__).parents[1].resolve()
  monkeypatch.setattr(sys, 'path', [p for p in sys.path if Path(p or '.').resolve() != root])
  for module in [m for m in sys.modules if m == 'experiments' or m.startswith('experiments.')]:
    monkeypatch.delitem(sys.modules, module)
  monkeypatch.chdir(tmp_path)
  config = load_config(f'{root}/experiments/configs/{name}.py:{VARIANTS[name][0]}')
  assert config.method in methods.available()
