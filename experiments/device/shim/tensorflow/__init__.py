"""Device-machine stand-in for TensorFlow, which that machine lacks and cannot be given (the wheel
is over the 64 MiB a call carries). jaxssl's input path only hides TF from the GPU
(jaxssl/data/datasets.py) before TFDS loads MNIST, here from .kit (../tensorflow_datasets); clu's
TensorBoard writer, the other user of TF, is replaced in ../sitecustomize.py."""

import types

config = types.SimpleNamespace(set_visible_devices=lambda *a, **k: None)
