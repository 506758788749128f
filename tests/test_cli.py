"""The command line a user reads before running anything: help, the method list, a config."""

import re
from pathlib import Path

import pytest

from jaxssl import methods
from jaxssl.cli import main
from jaxssl.config import base_config

CONFIGS = Path(__file__).parents[1] / 'experiments' / 'configs'


def _out(capsys, *argv, code=None):
  capsys.readouterr()
  if code is None:
    main(['jaxssl', *argv])
  else:
    with pytest.raises(SystemExit) as exit_info:
      main(['jaxssl', *argv])
    assert exit_info.value.code == code
  return capsys.readouterr().out


def test_help_lists_the_options_of_that_command(capsys):
  train = _out(capsys, 'train', '--help', code=0)
  assert '--workdir' in train and '--config.KEY=VALUE' in train and '--steps' not in train
  bench = _out(capsys, 'bench', '--config=x.py', '-h', code=0)  # --help wins over other flags
  assert '--steps' in bench and '(default: 50)' in bench and '--workdir' not in bench


def test_version_names_jaxssl_and_the_libraries_behind_its_numbers(capsys):
  import jaxssl

  out = _out(capsys, '--version', code=0)
  assert out.startswith(f'jaxssl {jaxssl.__version__} (jax ') and 'flax ' in out


def test_methods_lists_every_method_with_its_paper(capsys):
  out = _out(capsys, 'methods')
  listed = [line.split()[0] for line in out.splitlines()]
  assert listed == methods.available()
  assert re.search(r'^fixmatch +FixMatch \(Sohn et al\. 2020\)', out, re.M)


def test_config_prints_every_key_and_the_defaults_it_changes(capsys):
  out = _out(
    capsys, 'config', f'--config={CONFIGS / "mnist_ssl.py"}:fixmatch,10', '--config.lr=0.1'
  )
  rows = dict(re.findall(r'^(\w+) += (.*)$', out, re.M))
  assert set(rows) == set(base_config('fixmatch'))  # the method's knobs and the common keys
  assert rows['lr'] == '0.1  (default: 0.03)'
  assert rows['threshold'] == '0.95'  # the method's default: no note
  assert rows['labels_per_class'] == '1  (default: 10)'
  gan = dict(
    re.findall(
      r'^(\w+) += (.*)$',
      _out(capsys, 'config', f'--config={CONFIGS / "mnist_improved_gan.py"}'),
      re.M,
    )
  )
  assert gan['steps_per_call'] == '0  (default: 1)  (auto: 1 on cpu)'  # what a run here takes
