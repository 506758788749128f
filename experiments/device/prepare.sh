#!/usr/bin/env bash
# Here, before a device call: .kit/ (git-ignored; name it in the call's `carry`) gets what the
# lent GPU machine lacks and cannot download: MNIST as TFDS prepared it, the CPU digests that
# test_fp.py compares with, and wheels (clu, ml_collections, dm-pix; our tested flax, optax,
# orbax and chex in case the machine's are outside pyproject's ranges).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
mkdir -p .kit/fallback
$PY -c "
import numpy as np
from jaxssl.data import datasets
d = datasets.load('mnist')
np.savez_compressed('.kit/mnist.npz', train_images=d.train_images, train_labels=d.train_labels,
                    test_images=d.test_images, test_labels=d.test_labels)"
P='--no-deps --only-binary=:all: --python-version 3.12 --implementation cp
   --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64'
version() { $PY -m pip show "$1" | awk '/^Version/{print $2}'; }
$PY -m pip download -q $P -d .kit clu==$(version clu) ml_collections==$(version ml_collections) \
  dm_pix==$(version dm_pix)
$PY -m pip download -q $P -d .kit/fallback flax==$(version flax) optax==$(version optax) \
  chex==$(version chex) orbax-checkpoint==$(version orbax-checkpoint)
# Each method's first 3 steps on this CPU (~3 min on 2 cores).
FP_WRITE=.kit/fp_cpu.json $PY -m pytest --noconftest -q -p no:cacheprovider \
  experiments/device/test_fp.py
du -sh .kit
