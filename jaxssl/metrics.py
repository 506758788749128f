"""Run outputs a person reads: metrics.jsonl, TensorBoard events, PNG sample grids."""

import json
import math
import os
from pathlib import Path

import numpy as np


class Writer:
  """Writes scalars to DIR/metrics.jsonl and TensorBoard, image grids to DIR/samples/*.png."""

  def __init__(self, workdir: str, resume_step: int = 0):
    self.workdir = Path(workdir)
    self.path = self.workdir / 'metrics.jsonl'
    if self.path.exists():  # rows a killed run wrote after its last checkpoint are redone
      rows = [r for r in self.path.read_text().splitlines() if r.strip()]
      keep = [r for r in rows if json.loads(r)['step'] <= resume_step]
      self.path.write_text(''.join(r + '\n' for r in keep))
    self._file = open(self.path, 'a')
    import tensorflow as tf  # already imported by TFDS; used only for its event-file writer

    self._tf = tf
    self._tb = tf.summary.create_file_writer(str(self.workdir))

  def scalars(self, step: int, values: dict[str, float]) -> None:
    row = {'step': int(step), **{k: float(v) for k, v in values.items()}}
    self._file.write(json.dumps(row) + '\n')
    self._file.flush()
    with self._tb.as_default(step=int(step)):
      for k, v in values.items():
        self._tf.summary.scalar(k, float(v))

  def images(self, step: int, name: str, images: np.ndarray, rows: int | None = None) -> Path:
    """Saves an image grid (`rows` rows, e.g. one per class) as PNG and in TensorBoard."""
    grid = image_grid(np.asarray(images), rows)
    path = self.workdir / 'samples' / f'{name}_{int(step):07d}.png'
    os.makedirs(path.parent, exist_ok=True)
    save_png(path, grid)
    with self._tb.as_default(step=int(step)):
      self._tf.summary.image(name, grid[None], max_outputs=1)
    return path

  def flush(self) -> None:
    self._file.flush()
    self._tb.flush()

  def close(self) -> None:
    self._file.close()
    self._tb.close()


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
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  if grid.shape[-1] == 1:
    plt.imsave(path, grid[..., 0], cmap='gray', vmin=0, vmax=1)
  else:
    plt.imsave(path, grid)
