"""The one trainer every method runs through: build, init or resume, results (loop.py steps it)."""

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxssl import config as config_lib
from jaxssl import loop, methods, parallel, rundir, xla
from jaxssl.checkpoint import Checkpoints, check_source, restore_parts
from jaxssl.data import datasets
from jaxssl.data.pipeline import Pipeline, eval_batches
from jaxssl.errors import UserError
from jaxssl.metrics import create_writer, eval_summary

# Per-image keys of eval metrics: a stream of its own, not the run's seed or sample key.
EVAL_KEY = lambda: jax.random.fold_in(jax.random.key(0), 0xE7A1)


class Step:
  """A jitted `(state, batch, hp)`, or a stage of it (Lowered, Compiled), with the method's
  hyperparameter inputs bound: called, lowered, traced and compiled as `(state, batch)`, like the
  jax.jit it wraps; anything else (cost_analysis, as_text, ...) is the wrapped object's."""

  def __init__(self, stage, hp: dict[str, jax.Array]):
    self.stage, self.hp = stage, hp

  def __getattr__(self, name):
    return getattr(self.stage, name)

  def __call__(self, state, batch):
    return self.stage(state, batch, self.hp)

  def lower(self, state, batch):
    return Step(self.stage.lower(state, batch, self.hp), self.hp)

  def trace(self, state, batch):
    return self.stage.trace(state, batch, self.hp)

  def compile(self, *args, **kwargs):
    return Step(self.stage.compile(*args, **kwargs), self.hp)


@dataclasses.dataclass
class Run:
  """What a resolved config builds: data, method and the compiled functions, before any step."""

  config: Any
  dataset: datasets.Dataset
  method: methods.Method
  mesh: jax.sharding.Mesh
  pipeline: Pipeline
  init: Callable[[], Any]  # () -> train state {step, rng, method}, replicated
  abstract_state: Any  # shapes, dtypes and shardings of the train state
  train_step: Step  # (state, batch) -> (state, metrics); state donated
  # (state, n steps' batches stacked) -> (state, the last step's metrics): config.steps_per_call
  train_steps: Step
  eval_step: Callable  # (state, batch) -> {'errors': {predictor: count}, 'means': {metric: sum}}
  sample: Callable | None  # (state) -> images, same latent codes every call

  def with_hparams(self, **values: float) -> 'Run':
    """This run with other values of the method's `hparams` (the config is not changed): its steps
    are the same compiled programs, given other inputs. With several processes, call it on every
    process with the same values (the inputs are put on all devices)."""
    unknown = set(values) - set(self.method.hparams)
    if unknown:
      raise UserError(
        f'not inputs of the {self.config.method} step: {sorted(unknown)}; '
        f'its inputs: {sorted(self.method.hparams)}'
      )
    hp = dict(self.train_step.hp) | _hparams(values, self.mesh)
    return dataclasses.replace(
      self,
      train_step=Step(self.train_step.stage, hp),
      train_steps=Step(self.train_steps.stage, hp),
    )

  def evaluate(self, state) -> dict[str, float]:
    """Error of every predictor, and the mean of every eval metric, on the whole test split."""
    totals = None
    for batch in eval_batches(
      self.dataset.test_images, self.dataset.test_labels, self.config.eval_batch_size, self.mesh
    ):
      # Summed on the host, one batch in flight: XLA:CPU's in-process all-reduce deadlocked
      # (a device never joined the rendezvous; abort after 40 s) with eval programs queued back
      # to back on 8 forced CPU devices, in about half of all runs on a 2-core machine.
      sums = jax.device_get(self.eval_step(state, batch))
      totals = sums if totals is None else jax.tree.map(np.add, totals, sums)
    n = len(self.dataset.test_labels)
    out = {f'eval/test/{name}': float(total / n) for name, total in totals['means'].items()}
    for name, errors in totals['errors'].items():
      prefix = f'eval/test/{name}/' if name else 'eval/test/'
      out |= {
        prefix + 'error': errors / n,
        prefix + 'accuracy': 1 - errors / n,
        prefix + 'errors': int(errors),
      }
    return out


def _hparams(values, mesh) -> dict[str, jax.Array]:
  """float32 scalars replicated over the mesh, put there once: steps then transfer nothing."""
  rep = parallel.replicated(mesh)
  return {k: jax.device_put(np.float32(v), rep) for k, v in values.items()}


def build(config, mesh=None, dataset: datasets.Dataset | None = None) -> Run:
  """Loads data (unless given) and compiles nothing yet; raises UserError on bad input first."""
  config = config_lib.resolve(config)
  make = lambda shape, classes, n_unlabeled: methods.get(config.method).make(
    config, methods.DataSpec(shape, classes, n_unlabeled, config.labels_per_class * classes)
  )
  known = method = None
  if dataset is None and config.dataset in datasets.SHAPES:
    # The method is made from the dataset's known shapes, so a bad knob fails before the data is
    # loaded (or downloaded); the loaded data's shapes are the same, so it is made once.
    shape, classes, n_train, _, n_extra = datasets.SHAPES[config.dataset]
    known, method = (shape, classes, n_train + n_extra), make(shape, classes, n_train + n_extra)
  ds = dataset if dataset is not None else datasets.load(config.dataset, config.data_dir)
  if (ds.image_shape, ds.num_classes, ds.num_unlabeled) != known:
    method = make(ds.image_shape, ds.num_classes, ds.num_unlabeled)
  mesh = mesh if mesh is not None else parallel.make_mesh()
  if not config.steps_per_call:  # auto: decided here, where the backend is up
    config = config_lib.resolve(
      {**config.to_dict(), 'steps_per_call': config_lib.steps_per_call(config)}
    )
  pipeline = Pipeline(ds, config, mesh, unlabeled=bool(method.unlabeled_views))
  rep, sharded = parallel.replicated(mesh), parallel.batch_sharding(mesh)
  init_rng = np.random.default_rng([config.seed, 1])
  init_images = ds.train_images[
    np.sort(init_rng.choice(len(ds.train_images), config.init_examples, replace=False))
  ]

  def init_fn(images, seed_key):
    # The seed's key is an argument, not a constant, so runs differing in seed share one program.
    key_init, key_run = jax.random.split(seed_key)
    # The run key is stored as raw uint32 data so checkpoints hold plain arrays.
    return {
      'step': jnp.zeros((), jnp.int32),
      'rng': jax.random.key_data(key_run),
      'method': method.init(key_init, images),
    }

  def step_fn(state, batch, hp):
    key = jax.random.fold_in(jax.random.wrap_key_data(state['rng']), state['step'])
    new, metrics = method.train_step(state['method'], batch, key, state['step'], hp)
    return {**state, 'step': state['step'] + 1, 'method': new}, metrics

  def steps_fn(state, batches, hp):
    state, metrics = jax.lax.scan(lambda s, b: step_fn(s, b, hp), state, batches)
    return state, jax.tree.map(lambda m: m[-1], metrics)

  predictors = {'': method.predict, **method.extra_predictors}

  def eval_fn(state, batch):
    errors = {
      name: jnp.sum((jnp.argmax(fn(state['method'], batch['x']), -1) != batch['y']) & batch['mask'])
      for name, fn in predictors.items()
    }
    means = {}
    if method.eval_metrics is not None:  # one key per test image, from its index
      # Not the run's seed: M2 seeds sharing one M1 then report the same M1 bound.
      keys = jax.vmap(lambda i: jax.random.fold_in(EVAL_KEY(), i))(batch['i'])
      values = method.eval_metrics(state['method'], batch['x'], keys)
      means = {k: jnp.sum(jnp.where(batch['mask'], v, 0.0)) for k, v in values.items()}
    return {'errors': errors, 'means': means}

  # Plain jit: init computes no convolution, and users trace it (jax.eval_shape(run.init)),
  # which a jit with compiler options refuses.
  init = jax.jit(init_fn, out_shardings=rep)
  abstract = jax.tree.map(
    lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rep),
    jax.eval_shape(init_fn, init_images, jax.random.key(config.seed)),
  )
  hp = _hparams(method.hparams, mesh)
  sample = None
  if method.sample is not None:
    key = jax.random.fold_in(jax.random.key(config.seed), 0x5A4D)
    sample = xla.jit(
      lambda state: method.sample(state['method'], key, config.num_samples), out_shardings=rep
    )
  return Run(
    config=config,
    dataset=ds,
    method=method,
    mesh=mesh,
    pipeline=pipeline,
    init=lambda: init(init_images, jax.random.key(config.seed)),
    abstract_state=abstract,
    train_step=Step(
      xla.jit(
        step_fn, in_shardings=(rep, sharded, rep), out_shardings=(rep, rep), donate_argnums=0
      ),
      hp,
    ),
    train_steps=Step(
      xla.jit(
        steps_fn,
        in_shardings=(rep, parallel.batch_sharding(mesh, leading=1), rep),
        out_shardings=(rep, rep),
        donate_argnums=0,
      ),
      hp,
    ),
    eval_step=xla.jit(eval_fn, in_shardings=(rep, sharded), out_shardings=rep),
    sample=sample,
  )


def _resume(run: Run, ckpts: Checkpoints) -> tuple[Any, dict]:
  """(state, meta) of the latest checkpoint, or of a fresh init; the data position is checked."""
  latest = ckpts.latest_step()
  if latest is None:
    state = run.init()
    if run.config.init_from:  # a fresh run only: a resume has these entries in its checkpoint
      parts, step = restore_parts(
        run.config.init_from, config_lib.init_keys(run.config), run.abstract_state['method']
      )
      state = {**state, 'method': {**state['method'], **parts}}
      print(
        f'jaxssl: {", ".join(parts)} from {run.config.init_from}, its checkpoint at step {step}',
        file=sys.stderr,
      )
    return state, {'wall_seconds': 0.0}
  state, meta = ckpts.restore(latest, run.abstract_state)
  if meta.get('data') != run.pipeline.position(latest):
    raise UserError(
      f'checkpoint {ckpts.directory / str(latest)} was written at data position '
      f'{meta.get("data")}, but this config resumes at {run.pipeline.position(latest)}'
    )
  return state, meta


def _results(run: Run, final: dict, clock: loop.Clock, images_per_step: int) -> dict:
  config = run.config
  steps_per_second = clock.steps_per_second(config.num_steps)
  return {
    'method': config.method,
    'dataset': config.dataset,
    'seed': config.seed,
    'split_seed': config_lib.split_seed(config),
    'split_recipe': config.split_recipe,
    'labels': config.labels_per_class * run.dataset.num_classes,
    'labels_per_class': config.labels_per_class,
    'steps': config.num_steps,
    'test_error': final['eval/test/error'],
    'test_errors': final['eval/test/errors'],
    'test_examples': len(run.dataset.test_labels),
    'wall_seconds': round(clock.wall(), 2),
    'images_per_second': round(steps_per_second * images_per_step, 1) if steps_per_second else None,
    'device': jax.devices()[0].device_kind,
    'device_count': jax.device_count(),
    **{
      f'test_{name}_error': final[f'eval/test/{name}/error'] for name in run.method.extra_predictors
    },
    **{
      f'test_{name}_errors': final[f'eval/test/{name}/errors']
      for name in run.method.extra_predictors
    },
  }


def train_and_evaluate(
  config, workdir: str, mesh=None, dataset: datasets.Dataset | None = None
) -> dict:
  """Trains (resuming from the latest checkpoint in workdir), evaluates, writes results.json.

  `mesh` defaults to every device, `dataset` to `config.dataset` (tests pass small subsets)."""
  t0 = time.time()
  config = config_lib.resolve(config)
  workdir = Path(workdir)
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    rundir.check_config(workdir, config)
    if parallel.is_main():  # before any compute: an unwritable workdir fails here, in a second
      rundir.write_text(workdir / 'config.json', config_lib.to_json(config) + '\n')
  except OSError as e:
    raise rundir.error(workdir, e) from None
  if config.init_from and not rundir.has_checkpoint(workdir):  # a resume never reads it
    if Path(config.init_from).resolve() == workdir.resolve():
      raise UserError(
        f"init_from is this run's own --workdir {workdir}; resuming needs no init_from"
      )
    check_source(config.init_from)
  run = build(config, mesh, dataset)
  ckpts = Checkpoints(workdir, config.keep_checkpoints)
  state, meta = _resume(run, ckpts)
  clock = loop.Clock(wall_before=meta['wall_seconds'], start=t0)
  writer = create_writer(str(workdir), int(state['step']), parallel.is_main())
  try:
    if int(state['step']) < config.num_steps:
      with rundir.StopSignal() as stop:
        state, final = loop.train_loop(run, state, ckpts, writer, clock, stop)
    else:  # already finished: evaluate the last checkpoint again
      final = run.evaluate(state)
  except OSError as e:  # a checkpoint or log write: the checkpoints before it are complete
    raise UserError(
      f'{rundir.error(workdir, e)} while writing the run; the last complete checkpoint '
      f'(step {ckpts.latest_step()}) is kept: free space and run the same command to resume'
    ) from None
  finally:
    ckpts.close()
    writer.close()
  views = 1 + (config.uratio if run.method.unlabeled_views else 0)
  results = _results(run, final, clock, config.batch_size * views)
  if parallel.is_main():  # its metrics.jsonl holds every evaluation of the run, resumes included
    results |= eval_summary(str(workdir))
    rundir.write_json(workdir / 'results.json', results)
  return results


def evaluate_workdir(workdir: str) -> dict:
  """Evaluates the latest checkpoint of a run on the test split."""
  workdir = Path(workdir)
  path = workdir / 'config.json'
  if not path.exists():
    raise UserError(f'{workdir} holds no run (no config.json); train into it first')
  config = config_lib.from_json(path.read_text())
  run = build(config)
  ckpts = Checkpoints(workdir, config.keep_checkpoints)
  latest = ckpts.latest_step()
  if latest is None:
    raise UserError(f'{workdir} holds no checkpoint yet')
  state, _ = ckpts.restore(latest, run.abstract_state)
  ckpts.close()
  out = {'step': latest, **run.evaluate(state)}
  rundir.write_json(workdir / 'eval.json', out)
  return out
