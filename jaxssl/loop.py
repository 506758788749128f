"""The training loop of a built run: compiled calls, logging, evaluation, checkpoints, stop signals,
and the clock that times them (train.py builds the run and resumes it; this steps it)."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from typing import TYPE_CHECKING

import jax
import numpy as np
from clu import periodic_actions
from tqdm import tqdm

from jaxssl import parallel, rundir
from jaxssl.checkpoint import Checkpoints
from jaxssl.errors import Preempted, UserError
from jaxssl.metrics import image_grid

if TYPE_CHECKING:  # train imports this module
  from jaxssl.train import Run


@dataclasses.dataclass
class Clock:
  """Wall time of the run (over resumes) and the time spent training, for throughput."""

  wall_before: float  # seconds of earlier sessions of this run
  start: float = dataclasses.field(default_factory=time.time)
  first_step: int | None = None  # the step after the first (compiling) one
  first_time: float = 0.0
  excluded: float = 0.0  # evaluation and checkpoint time since first_time

  def wall(self) -> float:
    return self.wall_before + time.time() - self.start

  def steps_per_second(self, last_step: int) -> float | None:
    seconds = time.time() - self.first_time - self.excluded
    if self.first_step is None or last_step <= self.first_step or seconds <= 0:
      return None
    return (last_step - self.first_step) / seconds


def _check_finite(row: dict, step: int, ckpts: Checkpoints) -> None:
  bad = [k for k, v in row.items() if not np.isfinite(v)]
  if bad:
    raise UserError(
      f'{bad[0]} is {row[bad[0]]} at step {step}; stopped without saving, the '
      f'checkpoints in {ckpts.directory} (latest: {ckpts.latest_step()}) are kept'
    )


def _evaluate(run: Run, state, step: int, writer, bar) -> dict:
  """Test errors of every predictor (and a sample grid), reported beside the progress bar."""
  row = run.evaluate(state)
  if run.sample is not None and parallel.is_main():
    writer.write_images(
      step, {'samples': image_grid(np.asarray(jax.device_get(run.sample(state))))}
    )
  message = f'step {step}: test error {100 * row["eval/test/error"]:.2f}%'
  others = [
    f'{name} {100 * row[f"eval/test/{name}/error"]:.2f}%' for name in run.method.extra_predictors
  ]
  message += f' ({", ".join(others)})' if others else ''
  bar.write(message, file=sys.stderr)  # beside the bar: stdout is for results
  return row


def call_plan(config, start: int) -> list[tuple[int, int]]:
  """(first step, steps) of each compiled call from `start` to num_steps: config.steps_per_call
  at most, each call ending at or before the next log, eval or checkpoint step. The same on every
  process, and from a resume at any of those steps the same as in an uninterrupted run."""
  every = (config.log_every, config.eval_every, config.checkpoint_every)
  plan, step = [], start
  while step < config.num_steps:
    boundary = min(config.num_steps, *(step // e * e + e for e in every))
    n = min(config.steps_per_call, boundary - step)
    plan.append((step, n))
    step += n
  return plan


def train_loop(run: Run, state, ckpts: Checkpoints, writer, clock: Clock, stop: rundir.StopSignal):
  """Steps from the state's step to num_steps, logging, evaluating and checkpointing on the way;
  returns (state, the last logged row). On a stop signal: checkpoints the last finished step and
  raises Preempted."""
  config, start = run.config, int(state['step'])
  if config.steps_per_call == 1:
    calls = ((step, 1) for step in range(start, config.num_steps))
    batches, train = run.pipeline.iterate(start, config.num_steps), run.train_step
    when = dict(every_steps=config.log_every)
  else:  # clu's every_steps wants a call every step; calls end at every log step
    calls = call_plan(config, start)
    batches, train = run.pipeline.iterate_calls(calls), run.train_steps
    when = dict(on_steps={s + n for s, n in calls if (s + n) % config.log_every == 0})
  progress = periodic_actions.ReportProgress(
    num_train_steps=config.num_steps, writer=writer, every_secs=None, **when
  )

  @contextlib.contextmanager
  def excluded(name):  # time that is not training, left out of the throughput
    t0 = time.time()
    with progress.timed(name, wait_jax_async_dispatch=False):
      yield
    clock.excluded += time.time() - t0

  bar = tqdm(
    total=config.num_steps,
    initial=start,
    unit='step',
    dynamic_ncols=True,
    mininterval=1.0,
    desc=f'{config.method}/{config.dataset}',
  )
  row = {}
  lengths = set()  # of calls so far: a call of a new length compiles first
  try:
    for (step, n), batch in zip(calls, batches):
      if lengths and n not in lengths:  # e.g. the last call of a run; not training time
        with excluded('compile'):
          train.lower(state, batch).compile()  # the call below finds it in jit's cache
      lengths.add(n)
      state, metrics = train(state, batch)
      s = step + n
      bar.update(n)
      if clock.first_step is None:  # time from the end of the first (compiling) call
        jax.block_until_ready(state)
        clock.first_step, clock.first_time = s, time.time()
      last = s == config.num_steps
      do_log, do_eval = s % config.log_every == 0 or last, s % config.eval_every == 0 or last
      stopping = stop.agreed(do_log) and not last
      do_ckpt = s % config.checkpoint_every == 0 or last or stopping
      do_log = do_log or stopping
      if not (do_log or do_eval or do_ckpt):
        progress(s)
        continue
      # Counted as training time: on an asynchronous device this fetch waits for queued steps.
      with progress.timed('log', wait_jax_async_dispatch=False):
        row = jax.device_get(metrics)  # the only host sync: at log, eval and checkpoint steps
        _check_finite(row, s, ckpts)
        bar.set_postfix(
          {k.split('/')[-1]: f'{v:.3g}' for k, v in row.items() if k.startswith('loss/')},
          refresh=False,
        )
      progress(s)  # after the fetch: its steps/s counts finished steps, not dispatched calls
      if do_eval:
        with excluded('eval'):
          row |= _evaluate(run, state, s, writer, bar)
      writer.write_scalars(s, row)
      if do_ckpt:
        with excluded('checkpoint'):
          writer.flush()  # a resume starts after this step, so its row must be on disk first
          ckpts.save(
            s, state, {'step': s, 'data': run.pipeline.position(s), 'wall_seconds': clock.wall()}
          )
      if stopping:
        ckpts.wait()
        raise Preempted(s, stop.name or 'a stop signal on another process', ckpts.directory)
    ckpts.wait()
  finally:
    batches.close()  # joins the input thread before a stop or an error leaves the loop
    bar.close()
  return state, row
