#!/usr/bin/env bash
# The default experiment: installs jaxssl into .venv and trains Improved-GAN on MNIST with 100
# labels for 10 epochs (~7 minutes on a 2-core CPU; offline: MNIST ships inside the package).
# Extra arguments go to `jaxssl train`, e.g. --config.seed=1.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
exec .venv/bin/jaxssl train --config=experiments/configs/mnist_improved_gan.py:quick \
  --workdir="${WORKDIR:-runs/mnist_improved_gan_quick}" "$@"
