"""Labeled splits and streams: balance, determinism, reshuffling, exact positions."""

import gzip
import threading

import jax
import numpy as np
import pytest

from jaxssl import parallel
from jaxssl.config import resolve
from jaxssl.data import datasets
from jaxssl.data.pipeline import Pipeline, Stream
from jaxssl.errors import UserError
from tests.helpers import tiny_config


def test_mnist_is_the_original(mnist):
  assert mnist.train_images.shape == (60000, 28, 28, 1) and mnist.train_images.dtype == np.uint8
  assert mnist.test_images.shape == (10000, 28, 28, 1)
  assert np.bincount(mnist.train_labels).tolist() == [
    5923,
    6742,
    5958,
    6131,
    5842,
    5421,
    5918,
    6265,
    5851,
    5949,
  ]
  assert np.bincount(mnist.test_labels).tolist() == [
    980,
    1135,
    1032,
    1010,
    982,
    892,
    958,
    1028,
    974,
    1009,
  ]
  assert abs(mnist.train_images.mean() / 255 - 0.1307) < 1e-3


@pytest.mark.parametrize('per_class', [1, 10, 100])
def test_split_is_class_balanced_and_deterministic(mnist, per_class):
  idx = datasets.labeled_subset(mnist, per_class, seed=3)
  assert len(idx) == len(set(idx.tolist())) == 10 * per_class
  assert np.bincount(mnist.train_labels[idx], minlength=10).tolist() == [per_class] * 10
  again = datasets.labeled_subset(mnist, per_class, seed=3)
  np.testing.assert_array_equal(idx, again)


def test_different_seeds_give_different_splits(mnist):
  a = datasets.labeled_subset(mnist, 10, seed=0)
  b = datasets.labeled_subset(mnist, 10, seed=1)
  assert len(set(a.tolist()) & set(b.tolist())) < 10


def test_split_seed_fixes_the_split_and_seed_still_draws_the_rest(mnist):
  # split_seed >= 0 draws the labeled split under every seed (the Improved-GAN code's
  # --seed_data); the seed still orders the batches. Unset, each seed draws its own split.
  mesh = parallel.make_mesh()
  pipe = lambda **kw: Pipeline(mnist, tiny_config('improved_gan', **kw), mesh, unlabeled=True)
  fixed = [pipe(seed=s, split_seed=7) for s in (0, 1)]
  np.testing.assert_array_equal(fixed[0].labeled_idx, fixed[1].labeled_idx)
  expected = datasets.labeled_subset(mnist, 10, seed=7)
  np.testing.assert_array_equal(fixed[0].labeled_idx, expected)
  assert not np.array_equal(fixed[0].host_batch(0)['x_u'], fixed[1].host_batch(0)['x_u'])
  own = datasets.labeled_subset(mnist, 10, seed=1)
  np.testing.assert_array_equal(pipe(seed=1).labeled_idx, own)


@pytest.mark.parametrize('per_class', [0, -1, 5422])
def test_impossible_label_counts(mnist, per_class):
  with pytest.raises(UserError, match='labels_per_class'):
    datasets.labeled_subset(mnist, per_class, seed=0)


def _raw_mnist_train():
  """MNIST's training images and labels as the original files order them (the package's copy)."""
  with gzip.open(datasets.EMBEDDED['mnist'] / 'train-images-idx3-ubyte.gz') as f:
    x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(60000, 28, 28, 1)
  with gzip.open(datasets.EMBEDDED['mnist'] / 'train-labels-idx1-ubyte.gz') as f:
    y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int32)
  return x, y


def test_improved_gan_split_is_the_authors_draw(mnist):
  # train_mnist_feature_matching.py (openai/improved-gan), --seed_data=1 --count=10, on the
  # original file order: the same images and labels (TFDS keeps MNIST in another order).
  trainx, trainy = _raw_mnist_train()
  inds = np.random.RandomState(1).permutation(trainx.shape[0])
  trainx, trainy = trainx[inds], trainy[inds]
  txs = np.concatenate([trainx[trainy == j][:10] for j in range(10)])
  tys = np.concatenate([trainy[trainy == j][:10] for j in range(10)])
  idx = datasets.labeled_subset(mnist, 10, seed=1, recipe='improved_gan')
  key = lambda x, y: sorted(zip(y.tolist(), (im.tobytes() for im in x)))
  assert key(mnist.train_images[idx], mnist.train_labels[idx]) == key(txs, tys)
  other = datasets.labeled_subset(mnist, 10, seed=2, recipe='improved_gan')
  assert len(set(idx.tolist()) & set(other.tolist())) < 10
  assert not np.array_equal(idx, datasets.labeled_subset(mnist, 10, seed=1))


def test_pipeline_draws_the_split_its_recipe_names(mnist):
  config = tiny_config('improved_gan', split_recipe='improved_gan', split_seed=1)
  pipe = Pipeline(mnist, config, parallel.make_mesh(jax.devices()[:1]), unlabeled=True)
  expected = datasets.labeled_subset(mnist, 10, seed=1, recipe='improved_gan')
  np.testing.assert_array_equal(pipe.labeled_idx, expected)


def test_improved_gan_split_needs_the_whole_mnist(mnist):
  subset = datasets.Dataset('mnist', 10, *(a[:2000] for a in (mnist.train_images,
    mnist.train_labels)), mnist.test_images, mnist.test_labels)  # fmt: skip
  with pytest.raises(UserError, match='whole MNIST training set only'):
    datasets.labeled_subset(subset, 10, seed=1, recipe='improved_gan')
  with pytest.raises(UserError, match='60000 images of the original MNIST training file are not'):
    datasets.labeled_subset(datasets.synthetic('mnist'), 10, seed=1, recipe='improved_gan')


@pytest.mark.parametrize(
  'overrides, message',
  [
    (
      dict(split_recipe='authors'),
      "split_recipe must be one of per_class, improved_gan, got 'authors'",
    ),
    (dict(split_recipe='improved_gan', dataset='cifar10'), "MNIST draw; dataset is 'cifar10'"),
  ],
)
def test_bad_split_recipe_is_one_line_before_any_data(overrides, message):
  with pytest.raises(UserError, match=message):
    resolve(tiny_config('improved_gan', **overrides))


def test_extra_unlabeled_images_join_the_pool_without_labels():
  # STL-10's 'unlabelled' split: pool positions past the training set are extra images, their
  # labels -1 (hidden from monitors), every image of both drawn once a pass.
  rng = np.random.default_rng(0)
  train = rng.integers(0, 256, (40, 4, 4, 1), dtype=np.uint8)
  extra = rng.integers(0, 256, (30, 4, 4, 1), dtype=np.uint8)
  labels = np.arange(40, dtype=np.int32) % 4
  ds = datasets.Dataset('stl10', 4, train, labels, train[:8], labels[:8], extra)
  assert ds.num_unlabeled == 70
  config = tiny_config('fixmatch', labels_per_class=2, batch_size=2, uratio=5, dataset='stl10')
  pipe = Pipeline(ds, config, parallel.make_mesh(jax.devices()[:1]), unlabeled=True)
  batches = [pipe.host_batch(step) for step in range(7)]  # 7 x 10 = one pass over the pool
  i_u = np.concatenate([b['i_u'] for b in batches])
  assert sorted(i_u.tolist()) == list(range(70))
  for b in batches:
    is_extra = b['i_u'] >= 40
    np.testing.assert_array_equal(b['y_u'], np.where(is_extra, -1, labels[b['i_u'] % 40]))
    source = np.where(
      is_extra[:, None, None, None], extra[(b['i_u'] - 40) % 30], train[b['i_u'] % 40]
    )
    np.testing.assert_array_equal(b['x_u'], source)
    assert (b['i_l'] < 8).all() and (b['y_l'] == labels[pipe.labeled_idx[b['i_l']]]).all()


def test_stream_reshuffles_every_pass_and_covers_the_pool():
  pool = np.arange(10, 20)
  stream = Stream(pool, batch_size=5, seed=0, name='labeled')
  first = np.concatenate([stream.indices(0), stream.indices(1)])
  second = np.concatenate([stream.indices(2), stream.indices(3)])
  assert sorted(first) == sorted(second) == list(pool)
  assert not np.array_equal(first, second)
  # A batch that straddles two passes; a fresh stream gives the same batch for the same step.
  odd = Stream(pool, batch_size=3, seed=0, name='labeled')
  np.testing.assert_array_equal(odd.indices(3), Stream(pool, 3, 0, 'labeled').indices(3))


def test_pipeline_batches_are_a_function_of_step(mnist):
  mesh = parallel.make_mesh()
  config = tiny_config('improved_gan', uratio=2)
  a = Pipeline(mnist, config, mesh, unlabeled=True)
  b = Pipeline(mnist, config, mesh, unlabeled=True)
  for step in (0, 7, 1000):
    x, y = a.host_batch(step), b.host_batch(step)
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
  batch = a.host_batch(5)
  assert batch['x_l'].shape == (16, 28, 28, 1) and batch['x_u'].shape == (32, 28, 28, 1)
  idx = a.labeled_idx[batch['i_l']]  # i_l: positions in the labeled set
  np.testing.assert_array_equal(batch['x_l'], mnist.train_images[idx])
  np.testing.assert_array_equal(batch['y_l'], mnist.train_labels[idx])
  keys = Pipeline(mnist, config, mesh, unlabeled=False).host_batch(0).keys()
  assert keys == {'x_l', 'y_l', 'i_l'}


def test_prefetched_device_batches_are_sharded(mnist):
  mesh = parallel.make_mesh()
  pipe = Pipeline(mnist, tiny_config('improved_gan'), mesh, unlabeled=True)
  batches = list(pipe.iterate(3, 5))
  assert len(batches) == 2
  assert batches[0]['x_l'].sharding.is_equivalent_to(parallel.batch_sharding(mesh), 4)
  np.testing.assert_array_equal(np.asarray(batches[1]['x_u']), pipe.host_batch(4)['x_u'])
  # One process takes one batched device_put; it must place rows as the multi-process path does.
  sharding = parallel.batch_sharding(mesh)
  for k, v in pipe.host_batch(4).items():
    per_array = jax.make_array_from_process_local_data(sharding, v)
    assert [s.index for s in batches[1][k].addressable_shards] == [
      s.index for s in per_array.addressable_shards
    ]
    for a, b in zip(batches[1][k].addressable_shards, per_array.addressable_shards):
      assert a.device == b.device
      np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))
  it = pipe.iterate(0, 10_000)
  next(it)
  it.close()  # the consumer leaves early: the producer thread is joined, not left running
  assert 'jaxssl-input' not in [t.name for t in threading.enumerate()]


def test_unknown_dataset_fails_before_any_work():
  with pytest.raises(UserError, match="unknown dataset 'mnits'"):
    datasets.load('mnits')


def test_a_known_dataset_tfds_cannot_build_says_so(monkeypatch):
  import tensorflow_datasets as tfds

  def broken(name, **kwargs):
    raise ImportError('no module named apache_beam')

  monkeypatch.setattr(tfds, 'builder', broken)
  with pytest.raises(UserError, match=r"TFDS cannot build dataset 'cifar10' \(ImportError: no mod"):
    datasets.load.__wrapped__('cifar10')


def test_offline_download_fails_fast_with_instructions(tmp_path, monkeypatch):
  """Without a network, a dataset that is not prepared fails at once and says what to do."""
  import socket

  def no_network(*args, **kwargs):
    raise socket.gaierror(-2, 'Name or service not known')

  monkeypatch.setattr(socket, 'getaddrinfo', no_network)
  with pytest.raises(UserError) as info:
    datasets.load('cifar10', str(tmp_path))
  message = str(info.value)
  assert "dataset 'cifar10' is not prepared in" in message and 'tfds build cifar10' in message
  assert 'JAXSSL_DATA_DIR' in message and 'www.cs.toronto.edu' in message
  assert not list(tmp_path.glob('cifar10/*/dataset_info.json'))
