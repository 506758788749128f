"""Image datasets by TFDS name, held in host memory as uint8; MNIST ships inside the package.

TFDS prepares and checksum-verifies every dataset. MNIST's four original LeCun files are embedded
(see mnist/README.md for provenance and licence) and handed to TFDS's own `mnist` builder as
`manual_dir`, so it prepares offline. Other datasets download where a network exists.
"""

import dataclasses
import functools
import gzip
import hashlib
import os
import socket
import urllib.parse
import zlib
from pathlib import Path

import numpy as np

from jaxssl.errors import UserError

# (image shape, classes, train size, test size, extra unlabeled) as TFDS prepares them.
SHAPES = {
  'mnist': ((28, 28, 1), 10, 60_000, 10_000, 0),
  'fashion_mnist': ((28, 28, 1), 10, 60_000, 10_000, 0),
  'cifar10': ((32, 32, 3), 10, 50_000, 10_000, 0),
  'cifar100': ((32, 32, 3), 100, 50_000, 10_000, 0),
  'svhn_cropped': ((32, 32, 3), 10, 73_257, 26_032, 0),
  'stl10': ((96, 96, 3), 10, 5_000, 8_000, 100_000),
}
# The datasets `load` accepts (shapes checked before any compute); others fail with this list.
KNOWN = tuple(SHAPES)
EMBEDDED = {'mnist': Path(__file__).parent / 'mnist'}


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Train/test arrays plus extra unlabeled images (STL-10's 'unlabelled' split; labels -1)."""

  name: str
  num_classes: int
  train_images: np.ndarray  # (N, H, W, C) uint8
  train_labels: np.ndarray  # (N,) int32
  test_images: np.ndarray
  test_labels: np.ndarray
  extra_images: np.ndarray | None = None

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.train_images.shape[1:])

  @property
  def num_unlabeled(self) -> int:
    """The unlabeled pool: every train image plus the extra unlabeled ones."""
    return len(self.train_images) + (0 if self.extra_images is None else len(self.extra_images))


def default_data_dir() -> str:
  """$JAXSSL_DATA_DIR, else TFDS's own default so prepared data is shared with other tools."""
  return os.environ.get('JAXSSL_DATA_DIR') or os.path.join(
    os.path.expanduser('~'), 'tensorflow_datasets'
  )


def _import_tfds():
  # TF is only the input pipeline: it must never grab GPU memory that JAX needs.
  import tensorflow as tf

  tf.config.set_visible_devices([], 'GPU')
  import tensorflow_datasets as tfds

  return tfds


def _prepare(tfds, name: str, data_dir: str):
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # a known name whose builder TFDS cannot make (a broken TFDS install)
    raise UserError(
      f'TFDS cannot build dataset {name!r} ({type(e).__name__}: {str(e)[:160]})'
    ) from None
  if builder.is_prepared():
    return builder
  manual = EMBEDDED.get(name)
  config = tfds.download.DownloadConfig(manual_dir=str(manual)) if manual else None
  if manual is None:
    _check_reachable(name, data_dir, builder.url_infos or {})
  try:
    builder.download_and_prepare(download_config=config)
  except Exception as e:
    raise UserError(_offline_message(name, data_dir, f'{type(e).__name__}: {e}')) from None
  return builder


def _offline_message(name: str, data_dir: str, why: str) -> str:
  why = (why.splitlines() or [''])[0][:160]
  return (
    f'dataset {name!r} is not prepared in {data_dir} and cannot be downloaded ({why}). '
    f'Prepare it where a network exists (`tfds build {name} --data_dir=DIR`), copy DIR here, '
    f'then pass --config.data_dir=DIR or set JAXSSL_DATA_DIR'
  )


def _check_reachable(name: str, data_dir: str, urls) -> None:
  """Fails in milliseconds offline; TFDS itself would retry name resolution for minutes."""
  for host in sorted({urllib.parse.urlparse(u).hostname for u in urls} - {None}):
    try:
      socket.getaddrinfo(host, 443)
    except OSError as e:
      raise UserError(_offline_message(name, data_dir, f'{host}: {e}')) from None


@functools.lru_cache(maxsize=4)
def load(name: str, data_dir: str = '') -> Dataset:
  """Prepares (if needed) and loads a TFDS image classification dataset into memory."""
  if name not in KNOWN:
    raise UserError(f'unknown dataset {name!r}; known: {", ".join(KNOWN)}')
  tfds = _import_tfds()
  builder = _prepare(tfds, name, data_dir or default_data_dir())

  def arrays(split):
    d = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
    return np.asarray(d['image'], np.uint8), np.asarray(d['label'], np.int32)

  train_x, train_y = arrays('train')
  test_x, test_y = arrays('test')
  extra = arrays('unlabelled')[0] if 'unlabelled' in builder.info.splits else None
  return Dataset(
    name, builder.info.features['label'].num_classes, train_x, train_y, test_x, test_y, extra
  )


def synthetic(name: str) -> Dataset:
  """Random images and balanced labels shaped like `name`, for benchmarks where the data is not
  prepared: timing a step needs shapes, not pixels. Pools are capped at 60,000 images."""
  if name not in KNOWN:
    raise UserError(f'unknown dataset {name!r}; known: {", ".join(KNOWN)}')
  shape, classes, n_train, n_test, n_extra = SHAPES[name]
  rng = np.random.default_rng(0)
  images = lambda n: rng.integers(0, 256, (min(n, 60_000), *shape), dtype=np.uint8)
  labels = lambda n: (np.arange(min(n, 60_000)) % classes).astype(np.int32)
  extra = images(n_extra) if n_extra else None
  return Dataset(
    name, classes, images(n_train), labels(n_train), images(n_test), labels(n_test), extra
  )


def labeled_subset(ds: Dataset, per_class: int, seed: int, recipe: str = 'per_class') -> np.ndarray:
  """Sorted indices of `per_class` training examples of every class, a pure function of its
  arguments (config.py's split_recipe says what the recipes draw)."""
  labels, num_classes = ds.train_labels, ds.num_classes
  counts = np.bincount(labels, minlength=num_classes)
  if per_class < 1 or per_class > counts.min():
    raise UserError(
      f'labels_per_class={per_class} is impossible for {ds.name}: it must be between 1 '
      f'and {counts.min()} (the smallest class, {int(counts.argmin())})'
    )
  if recipe == 'improved_gan':
    # train_mnist_feature_matching.py: inds = RandomState(seed_data).permutation(60000) over
    # its mnist.npz (x_train + x_valid of mnist.pkl.gz: the LeCun training file in its order;
    # the npz itself is not in their repository), then the first `count` of each class.
    original = original_order(ds)
    inds = np.random.RandomState(seed).permutation(len(original))
    y = labels[original[inds]]
    picks = [original[inds[y == c][:per_class]] for c in range(num_classes)]
    return np.sort(np.concatenate(picks))
  rng = np.random.default_rng([seed, zlib.crc32(ds.name.encode())])
  picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(num_classes)]
  return np.sort(np.concatenate(picks))


def original_order(ds: Dataset) -> np.ndarray:
  """`ds`'s index of each training image of MNIST's original file, in the file's order (TFDS
  stores them shuffled), matched by content."""
  path = EMBEDDED['mnist'] / 'train-images-idx3-ubyte.gz'
  if ds.name != 'mnist' or len(ds.train_images) != 60_000:
    raise UserError(
      f'the original file order is known for the whole MNIST training set only, not for {ds.name} '
      f'with {len(ds.train_images)} training images'
    )
  with gzip.open(path) as f:
    raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(60_000, -1)
  index = {hashlib.sha1(x.tobytes()).digest(): i for i, x in enumerate(ds.train_images)}
  order = np.array([index.get(hashlib.sha1(x.tobytes()).digest(), -1) for x in raw], np.int64)
  if (order < 0).any():  # e.g. synthetic images under MNIST's name (jaxssl bench)
    raise UserError(
      f'{int((order < 0).sum())} images of the original MNIST training file are not in this '
      "dataset's training set: split_recipe='improved_gan' needs the real MNIST"
    )
  return order
