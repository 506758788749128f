"""Labeled and unlabeled batch streams, a pure function of (seed, step), prefetched to device.

Each stream walks a fresh permutation of its pool every pass, so the batch of step k depends only
on (dataset, seed, k): resuming at step k is exact with no iterator state beyond k itself.
"""

import queue
import threading
import zlib

import numpy as np

from jaxssl import parallel
from jaxssl.config import split_seed
from jaxssl.data.datasets import Dataset, labeled_subset


class Stream:
  """Endless stream over `pool`, reshuffled every pass."""

  def __init__(self, pool: np.ndarray, batch_size: int, seed: int, name: str):
    self.pool, self.batch_size = pool, batch_size
    self._seed = [seed, zlib.crc32(name.encode())]
    self._perms: dict[int, np.ndarray] = {}

  def _perm(self, epoch: int) -> np.ndarray:
    if epoch not in self._perms:
      if len(self._perms) > 2:
        self._perms.pop(min(self._perms))
      rng = np.random.default_rng([*self._seed, epoch])
      self._perms[epoch] = self.pool[rng.permutation(len(self.pool))]
    return self._perms[epoch]

  def indices(self, step: int) -> np.ndarray:
    pos = step * self.batch_size + np.arange(self.batch_size)
    epoch, offset = np.divmod(pos, len(self.pool))
    out = np.empty(self.batch_size, self.pool.dtype)
    for e in np.unique(epoch):
      out[epoch == e] = self._perm(int(e))[offset[epoch == e]]
    return out

  def seen(self, step: int) -> int:
    return step * self.batch_size


class Pipeline:
  """Batches {x_l, y_l, i_l[, x_u, y_u, i_u]}; the unlabeled pool holds the labeled images too
  (as the papers' code)."""

  def __init__(self, ds: Dataset, config, mesh, unlabeled: bool):
    self.ds, self.mesh = ds, mesh
    self.labeled_idx = labeled_subset(
      ds, config.labels_per_class, split_seed(config), config.split_recipe
    )
    parallel.check_divisible(config.batch_size, 'batch_size', mesh)
    # Over positions in the labeled set (the same draws as over its indices: a permutation
    # depends only on the pool's length), so a batch also says which labeled example it holds.
    positions = np.arange(len(self.labeled_idx), dtype=np.int32)
    self.labeled = Stream(positions, config.batch_size, config.seed, 'labeled')
    self.unlabeled = None
    if unlabeled:
      self.unlabeled = Stream(
        np.arange(ds.num_unlabeled), config.batch_size * config.uratio, config.seed, 'unlabeled'
      )

  def _gather(self, idx: np.ndarray):
    n = len(self.ds.train_images)
    if self.ds.extra_images is None or idx.max() < n:
      return self.ds.train_images[idx], self.ds.train_labels[idx]
    extra = idx >= n
    x = np.empty((len(idx), *self.ds.image_shape), np.uint8)
    x[~extra] = self.ds.train_images[idx[~extra]]
    x[extra] = self.ds.extra_images[idx[extra] - n]
    return x, np.where(extra, -1, self.ds.train_labels[np.minimum(idx, n - 1)]).astype(np.int32)

  def host_batch(self, step: int) -> dict[str, np.ndarray]:
    """This process's rows of the global batch of `step`."""
    pos = self.labeled.indices(step)
    pos = pos[parallel.process_rows(len(pos))]
    idx = self.labeled_idx[pos]
    batch = {'x_l': self.ds.train_images[idx], 'y_l': self.ds.train_labels[idx], 'i_l': pos}
    if self.unlabeled is not None:
      idx = self.unlabeled.indices(step)
      idx = idx[parallel.process_rows(len(idx))]
      batch['x_u'], batch['y_u'] = self._gather(idx)
      batch['i_u'] = idx.astype(np.int32)  # pool positions: per-example state (FlexMatch)
    return batch

  def position(self, step: int) -> dict[str, int]:
    pos = {'labeled_seen': self.labeled.seen(step)}
    if self.unlabeled is not None:
      pos['unlabeled_seen'] = self.unlabeled.seen(step)
    return pos

  def iterate(self, start: int, stop: int, buffer: int = 2):
    """Device batches for steps [start, stop), prepared `buffer` steps ahead on a thread."""
    makers = (
      (lambda s=s: parallel.to_device(self.host_batch(s), self.mesh)) for s in range(start, stop)
    )
    return _prefetch(makers, stop - start, buffer)

  def iterate_calls(self, plan: list[tuple[int, int]], buffer: int = 2):
    """For each (first step, n) of `plan`, the batches of its n steps stacked on a leading axis
    (the input of Run.train_steps), prepared `buffer` calls ahead on a thread."""

    def stacked(first, n):
      hosts = [self.host_batch(step) for step in range(first, first + n)]
      local = {k: np.stack([h[k] for h in hosts]) for k in hosts[0]}
      return parallel.to_device(local, self.mesh, leading=1)

    return _prefetch(((lambda f=f, n=n: stacked(f, n)) for f, n in plan), len(plan), buffer)


def _prefetch(makers, count: int, buffer: int):
  """The values of `count` thunks from `makers`, each computed on a producer thread up to
  `buffer` items ahead of the consumer."""
  q: queue.Queue = queue.Queue(maxsize=buffer)
  done = threading.Event()

  def offer(item) -> bool:  # False once the consumer has gone
    while not done.is_set():
      try:
        q.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def produce():
    try:
      for make in makers:
        if not offer(make()):
          return
    except BaseException as e:  # surfaced in the consumer, not lost in the thread
      offer(e)

  thread = threading.Thread(target=produce, name='jaxssl-input', daemon=True)
  thread.start()
  try:
    for _ in range(count):
      item = q.get()
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    # Joined, not left running: a daemon thread still inside JAX or TF when the interpreter
    # exits (e.g. after a preemption stop) aborts the process in C++ ("FATAL: exception not
    # rethrown") instead of leaving with the run's exit code.
    done.set()
    thread.join()


def eval_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, mesh):
  """(x, y, i, mask) device batches covering every example once (i: its index in the split, so
  per-example randomness of an evaluation does not depend on batching); the last is padded."""
  parallel.check_divisible(batch_size, 'eval_batch_size', mesh)
  for start in range(0, len(images), batch_size):
    x, y = images[start : start + batch_size], labels[start : start + batch_size]
    mask = np.ones(batch_size, bool)
    if len(x) < batch_size:
      pad = batch_size - len(x)
      mask[len(x) :] = False
      x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
      y = np.concatenate([y, np.zeros(pad, y.dtype)])
    i = np.arange(start, start + batch_size, dtype=np.int32)
    rows = parallel.process_rows(batch_size)
    yield parallel.to_device({'x': x[rows], 'y': y[rows], 'i': i[rows], 'mask': mask[rows]}, mesh)
