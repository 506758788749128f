"""The trainer end to end: exact resume (in process, and after SIGKILL), sharding, SSL beats
supervised, errors."""

import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments.configs import mnist_supervised
from jaxssl import config as config_lib
from jaxssl import loop, parallel, train
from jaxssl.checkpoint import Checkpoints
from jaxssl.cli import main
from jaxssl.data import datasets
from jaxssl.errors import UserError
from jaxssl.methods import flexmatch
from jaxssl.train import train_and_evaluate
from tests import helpers
from tests.helpers import tiny_config

CONFIG = Path(__file__).parents[1] / 'experiments' / 'configs' / 'mnist_improved_gan.py'
RESUME_ARGS = [
  '--config.num_steps=60',
  '--config.checkpoint_every=10',
  '--config.eval_every=60',
  '--config.log_every=10',
  '--config.batch_size=32',
  '--config.keep_checkpoints=10',
]


def _cli(workdir, *extra):
  return helpers.start_cli_train(
    f'{CONFIG}:quick', workdir, *RESUME_ARGS, *extra, stdout=subprocess.PIPE
  )


def _train(config, workdir, dataset=None):
  """train_and_evaluate on one device and, unless told otherwise, the small MNIST subset."""
  return train_and_evaluate(config, str(workdir), helpers.one_device(), dataset or helpers.small())


def _restore(workdir, dataset=None):
  config = json.loads((Path(workdir) / 'config.json').read_text())
  run = helpers.build_small(config, dataset=dataset)
  ckpts = Checkpoints(str(workdir), keep=10)
  state, meta = ckpts.restore(ckpts.latest_step(), run.abstract_state)
  ckpts.close()
  return jax.device_get(state), meta


def _is_timing(key: str) -> bool:
  return key == 'steps_per_sec' or key.startswith(('timing/', 'uptime'))


@pytest.mark.parametrize(
  'method, strong',
  [
    # The richest state (per-example memory, EMA, optimizer, CTAugment's bin weights) and a data
    # position; every method's state goes through a checkpoint in test_methods.py.
    ('flexmatch', 'ctaugment'),
    # A model with extra heads, the labeled bank and the alignment queue.
    ('simmatch', 'randaugment'),
  ],
)
def test_interrupted_run_resumes_bit_identically(tmp_path, method, strong):
  config = tiny_config(method, checkpoint_every=1, keep_checkpoints=5, strong_augment=strong)
  straight = _train(config, tmp_path / 'straight')
  # The run died after its checkpoint at step 1 (and wrote rows past it): results and later
  # checkpoints gone.
  shutil.copytree(tmp_path / 'straight', tmp_path / 'resumed')
  shutil.rmtree(tmp_path / 'resumed' / 'checkpoints' / '2')
  (tmp_path / 'resumed' / 'results.json').unlink()
  resumed = _train(config, tmp_path / 'resumed')
  a, meta_a = _restore(tmp_path / 'straight')
  b, meta_b = _restore(tmp_path / 'resumed')
  assert int(a['step']) == int(b['step']) == 2 and meta_a['data'] == meta_b['data']
  jax.tree.map(np.testing.assert_array_equal, a, b)
  # The rows after the checkpoint are rewritten, the same but for wall-clock timings.
  rows = lambda d: [
    {k: v for k, v in json.loads(r).items() if not _is_timing(k)}
    for r in (d / 'metrics.jsonl').read_text().splitlines()
  ]
  assert [r['step'] for r in rows(tmp_path / 'resumed')] == [1, 2]
  assert rows(tmp_path / 'resumed') == rows(tmp_path / 'straight')
  assert resumed['test_errors'] == straight['test_errors']
  # results.json's summary of the evaluations in metrics.jsonl (one here, at step 2).
  assert resumed['median_of_last'] == 1 and resumed['best_step'] == 2
  assert resumed['test_error_median_last'] == resumed['test_error_best'] == resumed['test_error']


@pytest.mark.slow
def test_sigkill_and_resume_is_bit_identical(tmp_path):
  straight = _cli(tmp_path / 'straight')
  killed = _cli(tmp_path / 'killed')
  first_ckpt = tmp_path / 'killed' / 'checkpoints' / '20'
  deadline = time.time() + 300
  while not first_ckpt.exists() and killed.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  assert killed.poll() is None, 'the run finished before it could be killed'
  killed.send_signal(signal.SIGKILL)
  killed.wait()
  steps_left = sorted(
    int(p.name) for p in (tmp_path / 'killed' / 'checkpoints').iterdir() if p.name.isdigit()
  )
  assert steps_left and steps_left[-1] < 60, steps_left
  resumed = _cli(tmp_path / 'killed')
  for proc in (straight, resumed):
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
  a, meta_a = _restore(tmp_path / 'straight', helpers.mnist())
  b, meta_b = _restore(tmp_path / 'killed', helpers.mnist())
  assert int(a['step']) == int(b['step']) == 60
  assert meta_a['data'] == meta_b['data'] == {'labeled_seen': 60 * 32, 'unlabeled_seen': 60 * 32}
  jax.tree.map(np.testing.assert_array_equal, a, b)
  rows = [json.loads(r) for r in (tmp_path / 'killed' / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in rows] == list(range(10, 61, 10)), 'resumed run must not repeat rows'
  results = json.loads((tmp_path / 'killed' / 'results.json').read_text())
  assert (
    results['test_errors']
    == json.loads((tmp_path / 'straight' / 'results.json').read_text())['test_errors']
  )


@pytest.mark.parametrize(
  'case',
  [
    'improved_gan',
    'fixmatch',
    'fixmatch+ctaugment',
    'flexmatch',
    'freematch',
    'softmatch',
    'adamatch',
    'dash',
    'simmatch',
    'remixmatch',
  ],
)
def test_sharded_step_equals_one_device_step(case):
  # FixMatch: batch norm must see the global batch (labeled + weak + strong) on every device.
  # FlexMatch: each device's examples land at their own rows of the replicated per-example memory.
  # FlexMatch (τ = 0 in tiny_config): every drawn example gets its pseudo-label.
  # FreeMatch, SoftMatch, AdaMatch, Dash: thresholds, weights and alignment come from statistics
  # of the global batch. SimMatch: each device's labeled rows land in the one bank, a repeated
  # example's last row in the global batch winning. ReMixMatch: MixUp partners and rotations
  # are drawn over the global batch. CTAugment: every device's probes update the one set of bin
  # weights, in the order of the global batch.
  one, states, metrics = helpers.first_steps(case)  # one device
  method, _, strong = case.partition('+')
  eight = helpers.build_small(one.config, mesh=parallel.make_mesh())
  assert eight.mesh.size == 8
  s8, _, m8 = helpers.run_steps(eight, 2)
  s1, m1, s8 = states[1], metrics[:2], jax.device_get(s8)
  # Float rounding, grown by two steps: CTAugment's per-image ops (blur, rescale, ...) fuse
  # differently for 64 and 8 images a device. A per-device statistic (batch norm, thresholds, the
  # bank) is not a last-bits difference. (1e-4 while layers.Conv summed weight gradients over
  # chunks, in another order on 8 devices; jaxssl.xla's convolutions take no chunks.)
  atol = 2e-5
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=atol), s1, s8)
  for k in m1[-1]:
    np.testing.assert_allclose(m1[-1][k], m8[-1][k], rtol=2e-4, atol=atol, err_msg=k)
  if strong:  # the bins each probe drew, in the global batch's order, on both
    np.testing.assert_allclose(s1['method']['cta_rates'], s8['method']['cta_rates'], atol=1e-6)
  if method == 'flexmatch':
    selected = s8['method']['selected']
    drawn = np.unique(np.concatenate([one.pipeline.host_batch(i)['i_u'] for i in range(2)]))
    assert (selected[drawn] >= 0).all()
    assert (np.delete(selected, drawn) == flexmatch.NEVER_DRAWN).all()


@pytest.mark.xdist_group('fixmatch')  # shares fixmatch's steps with the other tests of it
def test_a_hyperparameter_input_reuses_the_step_and_equals_the_config_value():
  run, states, _ = helpers.first_steps('fixmatch')
  half = run.with_hparams(lambda_u=0.5)
  _, by_input, _ = helpers.run_steps(half, 2)
  assert half.train_step._cache_size() == 1, 'one compiled step for both values'
  assert half.config.lambda_u == 1.0 and float(half.train_step.hp['lambda_u']) == 0.5
  _, by_config, _ = helpers.run_steps(helpers.build_small(tiny_config('fixmatch', lambda_u=0.5)), 2)
  jax.tree.map(np.testing.assert_array_equal, by_input[1], by_config[1])
  kernel = lambda s: s['method']['params']['head']['kernel']
  assert np.abs(kernel(by_input[1]) - kernel(states[1])).max() > 1e-6, 'λu = 0.5 is not 1'
  with pytest.raises(UserError, match=r"not inputs of the fixmatch step: \['ema_decay'\]"):
    run.with_hparams(ema_decay=0.5)


@pytest.mark.slow
def test_short_gan_run_beats_labeled_only_baseline():
  # Two epochs; both average their weights over the same short horizon; G's init as the default
  # (short) run's.
  common = dict(num_steps=1200, batch_size=100, init_examples=500)
  gan_config = tiny_config('improved_gan', polyak_decay=0.999, gen_output_init='normal', **common)
  gan = helpers.error_after_training(gan_config, 1200)
  baseline = tiny_config('supervised', **mnist_supervised.LIKE_IMPROVED_GAN, **common)
  baseline.ema_decay = 0.999
  sup = helpers.error_after_training(baseline, 1200)
  assert gan < sup - 0.02, (gan, sup)


def _error(capsys, *argv):
  capsys.readouterr()  # only what this command prints
  with pytest.raises(SystemExit) as exit_info:
    main(['jaxssl', *argv])
  err = capsys.readouterr().err
  assert exit_info.value.code != 0
  assert err.count('\n') == 1 and err.startswith('jaxssl: error: '), err
  return err


@pytest.mark.parametrize(
  'override, message',
  [
    ('--config.lr_typo=1', 'lr_typo'),
    ('--config.labels_per_class=6000', 'labels_per_class=6000 is impossible'),
    ('--config.dataset=mnits', "unknown dataset 'mnits'"),
    ('--config.method=fixmatchh', "unknown method 'fixmatchh'"),
    ('--config.batch_size=12', 'divisible by the number of devices'),
  ],
)
def test_bad_config_is_one_line_and_before_compute(
  capsys, tmp_path, monkeypatch, override, message
):
  load = datasets.load  # MNIST from the session's copy rather than read from TFDS per case
  monkeypatch.setattr(
    datasets, 'load', lambda name, *a: helpers.mnist() if name == 'mnist' else load(name, *a)
  )
  err = _error(capsys, 'train', f'--config={CONFIG}:quick', f'--workdir={tmp_path}', override)
  assert message in err
  assert not (tmp_path / 'checkpoints').exists()


def test_config_file_typo_is_caught(tmp_path):
  with pytest.raises(UserError, match=r"'lr_d' \(did you mean 'lr'\?\)"):
    _train({**tiny_config('improved_gan').to_dict(), 'lr_d': 0.1}, tmp_path)


def test_nan_loss_stops_before_saving(tmp_path):
  # NaN noise makes every loss NaN from the first step; checkpoint_every=1 would save each step.
  config = tiny_config(
    'improved_gan', num_steps=4, checkpoint_every=1, log_every=2, input_noise=float('nan')
  )
  with pytest.raises(UserError, match=r'loss/\S+ is nan at step 1; stopped without saving'):
    _train(config, tmp_path)
  assert not [p for p in (tmp_path / 'checkpoints').iterdir() if p.name.isdigit()]


def test_other_config_in_existing_workdir_is_refused(tmp_path):
  _train(tiny_config('supervised'), tmp_path)
  with pytest.raises(UserError, match='another config.*lr: 0.03 -> 0.1'):
    _train(tiny_config('supervised', lr=0.1), tmp_path)
  with pytest.raises(
    UserError, match="another config.*split_recipe: 'per_class' -> 'improved_gan'"
  ):
    _train(tiny_config('supervised', split_recipe='improved_gan'), tmp_path)
  # Keys that change how a run reports, not what it computes, may change on resume.
  _train(tiny_config('supervised', log_every=2, eval_batch_size=100, keep_checkpoints=1), tmp_path)


def test_a_run_starts_the_named_parts_of_its_state_from_another_run(tmp_path):
  # M1+M2 as the authors ran it: one run trains M1 only, M2 runs start from it. The same seed as
  # the source, so only init_keys tells which entries come from it.
  m1 = dict(stacked=True, m1_keep_std=0.07)
  _train(tiny_config('vae_m2', m1_fraction=1.0, **m1), tmp_path / 'm1')
  source, _ = _restore(tmp_path / 'm1')
  same = lambda a, b: all(
    np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
  )
  starts = {}
  for keys in ('m1', ''):
    run = helpers.build_small(
      tiny_config('vae_m2', m1_fraction=0.0, init_from=str(tmp_path / 'm1'), init_keys=keys, **m1)
    )
    starts[keys] = jax.device_get(train._resume(run, Checkpoints(str(tmp_path / keys), 1))[0])
  fresh = jax.device_get(run.init())['method']
  assert same(starts['m1']['method']['m1'], source['method']['m1'])
  assert not same(fresh['m1'], source['method']['m1'])  # M1 trained: the copy is visible
  assert same(starts['m1']['method']['m2'], fresh['m2'])  # not named: this run's own init
  assert same(starts['']['method'], source['method'])  # '' takes every entry
  # Trained: M1 stays the other run's (frozen under M2's steps), which is read and never written.
  files = lambda: {p: p.stat().st_mtime_ns for p in (tmp_path / 'm1').rglob('*')}
  before = files()
  config = tiny_config(
    'vae_m2', m1_fraction=0.0, init_from=str(tmp_path / 'm1'), init_keys='m1', **m1
  )
  _train(config, tmp_path / 'm2')
  assert files() == before
  target, _ = _restore(tmp_path / 'm2')
  assert same(target['method']['m1'], source['method']['m1'])
  assert not same(target['method']['m2'], fresh['m2'])
  assert 0 < target['method']['keep'].sum() < 50


def test_a_failed_start_can_be_rerun_in_its_workdir_with_the_config_corrected(tmp_path):
  with pytest.raises(UserError, match='trains no M1'):
    _train(tiny_config('vae_m2', stacked=True, m1_fraction=0.0), tmp_path / 'run')
  _train(tiny_config('vae_m2', stacked=True, m1_fraction=0.5), tmp_path / 'run')
  assert (tmp_path / 'run' / 'results.json').exists()


@pytest.mark.parametrize(
  'overrides, message',
  [
    (dict(init_keys='m1'), "init_keys='m1' needs init_from"),
    (dict(m1_fraction=0.0), 'm1_fraction=0.0 of 2 steps trains no M1: set init_from'),
    (dict(init_from='{tmp}/nothing', init_keys='m1'), 'no checkpoints directory'),
    (
      dict(init_from='{tmp}/m1', init_keys='m1,m3'),
      r"method state has no 'm3' \(it has keep, m1, m2\)",
    ),
    (
      dict(init_from='{tmp}/m1', init_keys='m1', m1_widths=(500, 32)),
      r'm1/\S+ is float32\[500\] in its checkpoint 2 but float32\[32\] in this run',
    ),
    (
      dict(init_from='{tmp}/m1', init_keys='m1', m1_widths=(500,)),  # one layer fewer here
      r'its checkpoint 2 has m1/\S+/layers/2/\S+, this run has not',
    ),
  ],
)
def test_bad_init_from_is_one_line_and_starts_nothing(tmp_path, overrides, message):
  if '{tmp}/m1' in overrides.get('init_from', ''):
    _train(tiny_config('vae_m2', stacked=True, m1_fraction=1.0), tmp_path / 'm1')
  overrides = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in overrides.items()}
  config = tiny_config('vae_m2', stacked=True, **{'m1_fraction': 0.0, **overrides})
  with pytest.raises(UserError, match=message):
    _train(config, tmp_path / 'run')
  checkpoints = tmp_path / 'run' / 'checkpoints'
  assert not checkpoints.exists() or not any(checkpoints.iterdir())


def test_corrupt_checkpoint_is_named_and_kept(capsys, tmp_path):
  _train(tiny_config('supervised'), tmp_path)
  files = [p for p in (tmp_path / 'checkpoints' / '2').rglob('*') if p.is_file()]
  data = [p for p in files if p.parent.name == 'd']  # array data; OCDBT may hold copies
  assert data
  for p in data:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
  snapshot = {p: p.stat().st_size for p in files}
  err = _error(capsys, 'eval', f'--workdir={tmp_path}')
  assert 'checkpoints/2 is unreadable or partial' in err
  assert {p: p.stat().st_size for p in files if p.exists()} == snapshot


def test_eval_cli_reads_the_latest_checkpoint(capsys, tmp_path):
  # Trained and evaluated on one device; `jaxssl eval` evaluates the same 10,000 test images on 8.
  results = _train(tiny_config('supervised'), tmp_path, dataset=helpers.mnist())
  capsys.readouterr()
  main(['jaxssl', 'eval', f'--workdir={tmp_path}'])
  out = json.loads(capsys.readouterr().out)
  assert out['step'] == 2 and out['eval/test/errors'] == results['test_errors']
  assert json.loads((tmp_path / 'eval.json').read_text())['step'] == 2


def test_results_and_metrics_files(tmp_path, capsys):
  results = _train(tiny_config('improved_gan'), tmp_path)
  # Beside the progress bar, each evaluation's errors: the averaged model's and every other
  # predictor's by name.
  assert re.search(r'step 2: test error [\d.]+% \(raw [\d.]+%\)', capsys.readouterr().err)
  for key in (
    'method',
    'dataset',
    'labels',
    'seed',
    'steps',
    'test_error',
    'test_errors',
    'wall_seconds',
    'images_per_second',
  ):
    assert key in results
  assert results['labels'] == 100 and results['test_examples'] == 500
  rows = [json.loads(r) for r in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in rows] == [1, 2] and 'eval/test/error' in rows[-1]
  assert json.loads((tmp_path / 'config.json').read_text())['method'] == 'improved_gan'
  assert list(tmp_path.glob('events.out.tfevents.*'))
  assert (tmp_path / 'samples' / 'samples_0000002.png').exists()


def test_bench_cli_writes_json(capsys, tmp_path):
  out = tmp_path / 'bench.json'
  main(
    [
      'jaxssl',
      'bench',
      f'--config={CONFIG}:quick',
      '--steps=3',
      '--warmup=1',
      f'--out={out}',
      '--config.batch_size=32',
    ]
  )
  result = json.loads(out.read_text())
  assert result['batch_total'] == 64 and result['step_ms_median'] > 0  # 32 labeled + 32 unlabeled
  assert result['device_count'] == 8 and 'compile_s' in result


def test_steps_get_their_batches_on_device_and_transfer_nothing(tmp_path, monkeypatch):
  # The input pipeline puts each batch on the devices ahead of its step (a prefetch thread), and
  # the compiled step moves nothing between host and device implicitly: every step of a run
  # passes under jax.transfer_guard('disallow').
  import dataclasses

  from jaxssl import train

  build = train.build

  def guarded_build(*args, **kwargs):
    run = build(*args, **kwargs)
    step = run.train_step

    def guarded(state, batch):
      with jax.transfer_guard('disallow'):
        return step(state, batch)

    return dataclasses.replace(run, train_step=guarded)

  monkeypatch.setattr(train, 'build', guarded_build)
  config = tiny_config('fixmatch', num_steps=3, log_every=1, eval_every=3)
  assert _train(config, tmp_path)['steps'] == 3


def test_call_plan_ends_a_call_at_every_log_eval_and_checkpoint_step():
  config = config_lib.resolve(
    tiny_config(
      'supervised', num_steps=47, log_every=13, eval_every=20, checkpoint_every=6, steps_per_call=5
    )
  )
  plan = loop.call_plan(config, 0)
  assert plan[:6] == [(0, 5), (5, 1), (6, 5), (11, 1), (12, 1), (13, 5)]
  ends = [s + n for s, n in plan]
  assert [s for s, _ in plan] == [0, *ends[:-1]] and ends[-1] == 47  # every step once, in order
  assert all(1 <= n <= 5 for _, n in plan)
  for every in (13, 20, 6):
    assert set(range(every, 47, every)) <= set(ends)
  # A resume starts at a call's end and calls as the uninterrupted run did from there on.
  for i, end in enumerate(ends[:-1]):
    assert loop.call_plan(config, end) == plan[i + 1 :]
  one = config_lib.resolve({**config.to_dict(), 'steps_per_call': 1})
  assert loop.call_plan(one, 0) == [(s, 1) for s in range(47)]


def test_several_steps_a_call_train_as_one_step_a_call(tmp_path):
  # Two compiled calls of two steps each (lax.scan over the stacked batches), on 8 devices: the
  # step counter and the data position are exact, and every array the steps moved is where four
  # one-step calls put it, to float rounding of another program. FixMatch's rounding is ~1e-3 of
  # the update (near-tied pseudo-labels of an untrained net can flip); a slip in the steps'
  # order, keys or batches is O(1) (the batches reversed: 0.44). A resume is bit-identical.
  config = tiny_config('fixmatch', num_steps=4, log_every=2, eval_every=4, checkpoint_every=2)
  _train(config, tmp_path / 'one')
  two = {**config.to_dict(), 'steps_per_call': 2}
  mesh = parallel.make_mesh()  # the stacked batches are sharded along their rows
  train_and_evaluate(two, str(tmp_path / 'two'), mesh, helpers.small())
  a, meta_a = _restore(tmp_path / 'one')
  b, meta_b = _restore(tmp_path / 'two')
  assert int(a['step']) == int(b['step']) == 4 and meta_a['data'] == meta_b['data']
  init = jax.device_get(helpers.build_small(config).init())
  for (path, x), y, x0 in zip(
    jax.tree.leaves_with_path(a), jax.tree.leaves(b), jax.tree.leaves(init)
  ):
    x, y, x0 = np.asarray(x), np.asarray(y), np.asarray(x0)
    moved = np.linalg.norm(x - x0) if np.issubdtype(x.dtype, np.floating) else 0
    if moved > 1e-4:
      assert np.linalg.norm(x - y) < 1e-2 * moved, jax.tree_util.keystr(path)
  rows = lambda d: [json.loads(r) for r in (d / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in rows(tmp_path / 'two')] == [2, 4]  # a row per log step
  for row_a, row_b in zip(rows(tmp_path / 'one'), rows(tmp_path / 'two'), strict=True):
    assert row_a['step'] == row_b['step']
    for k in (k for k in row_a if k.startswith('loss/')):  # the call's last step's, not a mean
      np.testing.assert_allclose(row_a[k], row_b[k], rtol=1e-3, err_msg=k)
  shutil.copytree(tmp_path / 'two', tmp_path / 'resumed')
  shutil.rmtree(tmp_path / 'resumed' / 'checkpoints' / '4')
  (tmp_path / 'resumed' / 'results.json').unlink()
  train_and_evaluate(two, str(tmp_path / 'resumed'), mesh, helpers.small())
  jax.tree.map(np.testing.assert_array_equal, b, _restore(tmp_path / 'resumed')[0])
