"""`jaxssl bench`: compile time, step time, images/s and memory of a compiled train step."""

import json
import resource
import statistics
import time

import jax
import numpy as np

from jaxssl import config as config_lib
from jaxssl import parallel
from jaxssl.data import datasets
from jaxssl.train import build


def _synthetic_batches(run):
  """The first batch of the (synthetic) data, over and over: measures the step alone."""
  batch = parallel.to_device(run.pipeline.host_batch(0), run.mesh)
  while True:
    yield batch


def _peak_memory() -> tuple[float | None, str]:
  stats = jax.devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    return stats['peak_bytes_in_use'] / 2**20, 'device peak'
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'host max RSS'


def run_bench(config, steps: int = 50, warmup: int = 5, data: str = 'synthetic') -> dict:
  """Times `steps` compiled steps after `warmup`; the step is compiled ahead of time from shapes."""
  if data not in ('synthetic', 'real'):
    raise ValueError(f"--data must be 'synthetic' or 'real', got {data!r}")
  # Synthetic: random images shaped like the dataset, so no download or preparation is needed.
  dataset = None
  if data == 'synthetic':
    dataset = datasets.synthetic(config_lib.resolve(config).dataset)
  run = build(config, dataset=dataset)
  cfg = run.config
  state = run.init()
  batches = (
    _synthetic_batches(run) if data == 'synthetic' else run.pipeline.iterate(0, steps + warmup + 1)
  )
  batch = next(batches)
  t0 = time.perf_counter()
  compiled = run.train_step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  times = []
  for i in range(warmup + steps):
    t0 = time.perf_counter()
    batch = next(batches)  # real data: waits for the prefetch thread, so input overhead shows
    state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    if i >= warmup:
      times.append(time.perf_counter() - t0)
  step_s = statistics.median(times)
  labeled = cfg.batch_size
  unlabeled = labeled * cfg.uratio if run.method.unlabeled_views else 0
  total = labeled + unlabeled
  forwarded = labeled + unlabeled * len(run.method.unlabeled_views)  # FixMatch: 64 + 2·448
  memory, memory_kind = _peak_memory()
  return {
    'method': cfg.method,
    'dataset': cfg.dataset,
    'data': data,
    'steps': steps,
    'batch_labeled': labeled,
    'batch_total': total,
    'batch_views': forwarded,
    'compile_s': round(compile_s, 3),
    'step_ms_median': round(1e3 * step_s, 3),
    'step_ms_p90': round(1e3 * float(np.percentile(times, 90)), 3),
    'images_per_s_labeled': round(labeled / step_s, 1),
    'images_per_s_total': round(total / step_s, 1),
    'views_per_s': round(forwarded / step_s, 1),
    'peak_memory_mib': round(memory, 1) if memory else None,
    'memory_kind': memory_kind,
    'device': jax.devices()[0].device_kind,
    'device_count': jax.device_count(),
    'platform': jax.default_backend(),
    'jax': jax.__version__,
  }


def table(result: dict) -> str:
  width = max(map(len, result))
  return '\n'.join(f'{k:<{width}}  {v}' for k, v in result.items())


def write(result: dict, path: str) -> None:
  with open(path, 'w') as f:
    json.dump(result, f, indent=2)
    f.write('\n')
