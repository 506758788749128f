"""Training runs in their own interpreter, for tests/test_multiprocess.py: one of N processes x 1
CPU device (started as `jaxssl train` starts them) trains tiny configs on MNIST arrays from an
.npz (no TFDS in the worker); process 0 saves each run's final state.

  python -m tests.multiprocess_worker DATA.npz NUM_PROCESSES PROCESS_ID PORT JOBS_JSON
JOBS_JSON: [[method, workdir, out.npz, wait], ...], run in order (a workdir holding a checkpoint
resumes from it); with `wait` the job starts once its workdir appears (the test writes it while
the workers import and compile).
"""

import json
import os
import sys
import time
from pathlib import Path


def final_state(method: str, workdir, dataset, mesh=None):
  """train_and_evaluate of the tiny config, then (leaves of the final checkpoint, test errors)."""
  import jax
  import numpy as np

  from jaxssl import parallel
  from jaxssl.checkpoint import Checkpoints
  from jaxssl.train import build, train_and_evaluate
  from tests import helpers

  config = helpers.tiny_config(method, num_steps=3, checkpoint_every=2)
  results = train_and_evaluate(config, str(workdir), mesh, dataset)
  run = build(config, mesh or parallel.make_mesh(), dataset)
  ckpts = Checkpoints(str(workdir), keep=3)
  final, _ = ckpts.restore(ckpts.latest_step(), run.abstract_state)
  ckpts.close()
  leaves = [np.asarray(x.addressable_data(0)) for x in jax.tree.leaves(final)]  # replicated
  return leaves, results['test_errors']


def main(data, num_processes, process_id, port, jobs):
  from jaxssl import cli

  num_processes, process_id = int(num_processes), int(process_id)
  cli.initialize_processes((f'localhost:{port}', num_processes, process_id), timeout=60)
  import jax
  import numpy as np

  from jaxssl.data import datasets

  arrays = np.load(data)
  dataset = datasets.Dataset('mnist', 10, *(arrays[k] for k in ('xtr', 'ytr', 'xte', 'yte')))
  for method, workdir, out, wait in json.loads(jobs):
    deadline = time.time() + 600
    while wait and not Path(workdir).exists():
      assert time.time() < deadline, f'{workdir} never appeared'
      time.sleep(0.05)
    leaves, errors = final_state(method, workdir, dataset)
    if jax.process_index() == 0:
      np.savez(out, *leaves, errors=errors, devices=jax.device_count())


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  main(*sys.argv[1:])
