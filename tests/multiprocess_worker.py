"""A training run in its own interpreter, for tests/test_multiprocess.py: N processes x D CPU
devices train a tiny config on the small MNIST subset; process 0 saves the final state's leaves.

  python -m tests.multiprocess_worker METHOD WORKDIR OUT NUM_PROCESSES PROCESS_ID PORT [STEPS]
"""

import os
import sys


def main(method, workdir, out, num_processes, process_id, port, steps='3'):
  import jax

  num_processes, process_id = int(num_processes), int(process_id)
  if num_processes > 1:
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(
      f'localhost:{port}', num_processes, process_id, initialization_timeout=60
    )
  import numpy as np

  from jaxssl import parallel
  from jaxssl.checkpoint import Checkpoints
  from jaxssl.train import train_and_evaluate
  from tests import helpers

  config = helpers.tiny_config(method, num_steps=int(steps), checkpoint_every=2)
  results = train_and_evaluate(config, workdir, dataset=helpers.small())
  run = helpers.build_small(config, mesh=parallel.make_mesh())  # every process's devices
  ckpts = Checkpoints(workdir, keep=3)
  final, _ = ckpts.restore(ckpts.latest_step(), run.abstract_state)
  ckpts.close()
  leaves = [np.asarray(x.addressable_data(0)) for x in jax.tree.leaves(final)]  # replicated
  if jax.process_index() == 0:
    np.savez(out, *leaves, errors=results['test_errors'], devices=jax.device_count())


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  main(*sys.argv[1:])
