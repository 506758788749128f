"""experiments/sweep.py: cells run once, resume, a table beside the baselines, figures."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from experiments import sweep
from jaxssl import parallel
from jaxssl.data import datasets
from tests import helpers

ROOT = Path(__file__).parents[1]
TINY = [  # a few steps of a tiny CNN: the harness is under test, not the method
  '--config.num_steps=4',
  '--config.log_every=2',
  '--config.eval_every=2',
  '--config.checkpoint_every=2',
  '--config.cnn_widths=(8,16)',
  '--config.cnn_head=gap',
]


@pytest.fixture(autouse=True)
def one_device_small_mnist(monkeypatch):
  """Cells train on one device and on the small MNIST subset (2,000 training, 500 test digits),
  and the 1-NN baseline reads the same subset: the harness is under test here, sharding in
  test_train.py, learning elsewhere."""
  monkeypatch.setattr(parallel, 'make_mesh', lambda devices=None: helpers.one_device())
  small = helpers.small()  # loads the real MNIST (helpers.mnist) before load is patched
  monkeypatch.setattr(datasets, 'load', lambda name, data_dir='': small)


def _sweep(capsys, workdir, *extra):
  """Runs the sweep in this process (programs compiled once); its stdout."""
  argv = [
    'sweep.py',
    f'--config={ROOT / "experiments" / "configs" / "mnist_ssl.py"}',
    '--methods=pseudo_label',
    '--labels=10',
    '--seeds=0,1',
    f'--workdir={workdir}',
    *TINY,
    *extra,
  ]
  capsys.readouterr()
  assert sweep.main(sweep._parse(argv)) == 0
  return capsys.readouterr().out


def _eval_errors(root, method):
  """Each seed's test errors (%) at its evaluations, from its metrics.jsonl."""
  out = []
  for s in (0, 1):
    rows = (root / f'{method}_10' / f'seed{s}' / 'metrics.jsonl').read_text().splitlines()
    out.append(
      [100 * r['eval/test/error'] for r in map(json.loads, rows) if 'eval/test/error' in r]
    )
  return out


def test_sweep_runs_each_cell_once_and_reports(capsys, tmp_path):
  first = _sweep(capsys, tmp_path)
  cells = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob('*/seed*'))
  # The labeled-only baseline runs beside the method, seed by seed.
  assert cells == [
    'pseudo_label_10/seed0',
    'pseudo_label_10/seed1',
    'supervised_10/seed0',
    'supervised_10/seed1',
  ]
  assert first.count(' -> ') == 4
  stamps = {c: (tmp_path / c / 'results.json').stat().st_mtime_ns for c in cells}
  again = _sweep(capsys, tmp_path)
  assert ' -> ' not in again  # finished cells are skipped, not retrained
  assert stamps == {c: (tmp_path / c / 'results.json').stat().st_mtime_ns for c in cells}

  table = json.loads((tmp_path / 'table.json').read_text())
  rows = {r['method']: r for r in table['rows']}
  assert set(rows) == {'supervised', 'pseudo_label'}
  for method, row in rows.items():
    errors = [
      100
      * json.loads((tmp_path / f'{method}_10' / f'seed{s}' / 'results.json').read_text())[
        'test_error'
      ]
      for s in (0, 1)
    ]
    assert [s['seed'] for s in row['seeds']] == [0, 1]
    assert set(row['minutes_by_device']) == {'cpu'}  # wall time is reported per device
    np.testing.assert_allclose(row['error_mean'], np.mean(errors))
    np.testing.assert_allclose(row['error_sd'], np.std(errors, ddof=1))
    medians = [s['median_last'] for s in row['seeds']]  # of each run's evaluations at steps 2, 4
    assert all(min(e) <= m <= max(e) for m, e in zip(medians, _eval_errors(tmp_path, method)))
    np.testing.assert_allclose(row['median_last_mean'], np.mean(medians))
    # The 1-NN baseline of the same two splits: the same for every method.
    np.testing.assert_allclose(
      row['nn_mean'], np.mean([100 * sweep.nearest_neighbour_error('mnist', 1, s) for s in (0, 1)])
    )
  md = (tmp_path / 'table.md').read_text()
  assert '| 10 | supervised | 2 |' in md and '| 10 | pseudo_label | 2 |' in md
  assert 'seed 1: ' in md and ' (cpu)' in md
  for png in ('summary.png', 'curves/pseudo_label_10.png', 'curves/supervised_10.png'):
    assert (tmp_path / png).stat().st_size > 1000, png

  # An interrupted cell (no results, last checkpoint at step 2 of 4) resumes from its checkpoint.
  cell = tmp_path / 'supervised_10' / 'seed1'
  (cell / 'results.json').unlink()
  shutil.rmtree(cell / 'checkpoints' / '4')
  resumed = _sweep(capsys, tmp_path)
  assert resumed.count(' -> ') == 1 and 'supervised, 10 labels, seed 1' in resumed
  rows = [json.loads(r) for r in (cell / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in rows] == [2, 4]
  after = json.loads((cell / 'results.json').read_text())
  assert after['test_errors'] == rows[-1]['eval/test/errors']


def test_nearest_neighbour_errors_match_brute_force():
  ds = helpers.mnist()
  idx = datasets.labeled_subset(ds, 1, 3)
  train = ds.train_images[idx].reshape(10, -1).astype(np.float64)
  test = ds.test_images[:500].reshape(500, -1).astype(np.float64)
  nearest = ((test[:, None] - train[None]) ** 2).sum(-1).argmin(1)
  expected = int(np.sum(ds.train_labels[idx][nearest] != ds.test_labels[:500]))
  got = sweep.nearest_neighbour_errors(
    ds.train_images[idx], ds.train_labels[idx], ds.test_images[:500], ds.test_labels[:500], 128
  )
  assert got == expected
