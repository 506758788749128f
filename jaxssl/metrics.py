"""Run outputs a person reads, through clu's metric writers: metrics.jsonl (one JSON row per logged
step), TensorBoard events, and PNG image grids (samples/<name>_<step>.png)."""

import json
import math
import statistics
from pathlib import Path

import numpy as np
from clu import metric_writers
from PIL import Image


class JsonlWriter(metric_writers.MetricWriter):
  """Scalars of a step as one row of DIR/metrics.jsonl; images as PNG grids in DIR/samples/.

  Everything written for the same step (the train metrics, the evaluation, clu's steps_per_sec)
  joins one row, written when a later step arrives or on flush.
  """

  def __init__(self, workdir: str, resume_step: int = 0):
    self.workdir = Path(workdir)
    self.path = self.workdir / 'metrics.jsonl'
    if self.path.exists():  # rows a killed run wrote after its last checkpoint are redone
      rows = [r for r in self.path.read_text().splitlines() if r.strip()]
      keep = [r for r in rows if json.loads(r)['step'] <= resume_step]
      self.path.write_text(''.join(r + '\n' for r in keep))
    self._file = open(self.path, 'a')
    self._row: dict = {}

  def write_scalars(self, step: int, scalars) -> None:
    if self._row and self._row['step'] != int(step):
      self.flush()
    self._row = {'step': int(step), **self._row, **{k: float(v) for k, v in scalars.items()}}

  def write_images(self, step: int, images) -> None:
    for name, grid in images.items():
      path = self.workdir / 'samples' / f'{name}_{int(step):07d}.png'
      path.parent.mkdir(parents=True, exist_ok=True)
      save_png(path, np.asarray(grid))

  def flush(self) -> None:
    if self._row:
      self._file.write(json.dumps(self._row) + '\n')
      self._file.flush()
      self._row = {}

  def close(self) -> None:
    self.flush()
    self._file.close()

  # Nothing else is logged as JSON.
  def write_summaries(self, step, values, metadata=None):
    pass

  def write_videos(self, step, videos):
    pass

  def write_audios(self, step, audios, *, sample_rate):
    pass

  def write_texts(self, step, texts):
    pass

  def write_histograms(self, step, arrays, num_buckets=None):
    pass

  def write_hparams(self, hparams):
    pass


# FixMatch's and MixMatch's tables report the median test error of the last 20 checkpoints (their
# extract_accuracy scripts); USB's and TorchSSL's the best one, chosen on the test set.
MEDIAN_OF_LAST = 20


def eval_summary(workdir: str) -> dict:
  """Over the evaluations in DIR/metrics.jsonl: the median test error of the last MEDIAN_OF_LAST
  and the lowest (with its step), so a run compares with tables of either protocol."""
  path = Path(workdir) / 'metrics.jsonl'
  rows = (
    [json.loads(r) for r in path.read_text().splitlines() if r.strip()] if path.exists() else []
  )
  evals = [(r['step'], r['eval/test/error']) for r in rows if 'eval/test/error' in r]
  if not evals:
    return {}
  last = [error for _, error in evals[-MEDIAN_OF_LAST:]]
  best_step, best = min(evals, key=lambda e: (e[1], e[0]))
  return {
    'test_error_median_last': statistics.median(last),
    'median_of_last': len(last),
    'test_error_best': best,
    'best_step': best_step,
  }


def create_writer(workdir: str, resume_step: int, main: bool) -> metric_writers.MetricWriter:
  """JSONL, TensorBoard and PNGs on the main process; elsewhere clu's logging writer only."""
  default = metric_writers.create_default_writer(workdir, just_logging=not main, asynchronous=False)
  if not main:
    return default
  return metric_writers.MultiWriter([default, JsonlWriter(workdir, resume_step)])


def image_grid(images: np.ndarray, rows: int | None = None, pad: int = 1) -> np.ndarray:
  """(N, H, W, C) in [0, 1] -> one (rows·(H+pad), cols·(W+pad), C) image."""
  n, h, w, c = images.shape
  rows = rows or int(math.sqrt(n))
  cols = math.ceil(n / rows)
  grid = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.float32)
  for i, img in enumerate(np.clip(images, 0, 1)):
    r, q = divmod(i, cols)
    grid[
      pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w
    ] = img
  return grid


def save_png(path, grid: np.ndarray) -> None:
  """An image in [0, 1] (H, W, 1 or 3) as an 8-bit PNG."""
  pixels = np.round(np.clip(grid, 0, 1) * 255).astype(np.uint8)
  Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)
