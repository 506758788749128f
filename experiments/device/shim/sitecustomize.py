"""Device machine only (it has no TensorFlow): clu's TensorBoard writer is replaced by a no-op
before anything imports it, so TensorBoard's TF-only hparams plugin is never loaded. jaxssl's
own JSONL metrics and PNGs are written as everywhere."""

import importlib.abc
import importlib.util
import sys

_NAME = 'clu.metric_writers.tf.summary_writer'


class _Loader(importlib.abc.Loader):
  def create_module(self, spec):
    return None

  def exec_module(self, module):
    from clu.metric_writers import interface

    class SummaryWriter(interface.MetricWriter):
      def __init__(self, logdir, *args, **kwargs):
        pass

      def __getattr__(self, name):  # write_scalars, write_images, ..., flush, close
        return lambda *a, **k: None

    for name in interface.MetricWriter.__abstractmethods__:
      setattr(SummaryWriter, name, lambda self, *a, **k: None)
    SummaryWriter.__abstractmethods__ = frozenset()
    module.SummaryWriter = SummaryWriter


class _Finder(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path, target=None):
    return importlib.util.spec_from_loader(name, _Loader()) if name == _NAME else None


sys.meta_path.insert(0, _Finder())
