"""Times jaxssl's conv backbone alone, one training pass (forward and backward of the summed
logits, batch norm in training mode, as `jaxssl bench` splits it off): the jaxssl side of
../shared/bench/torch_reference.py, which times the same networks in PyTorch. Median of 4 (wrn)
or 20 (cnn) passes after one.

  python experiments/bench_backbone.py wrn 960            # WRN-28-2 on 960 32x32x3 images
  python experiments/bench_backbone.py wrn 960 --chunk=0  # one convolution over the whole batch
  python experiments/bench_backbone.py cnn 224            # the MNIST SmallCNN 16-32-64
  python experiments/bench_backbone.py cnn 224 --grad_chunk=0  # XLA's one weight gradient
  python experiments/bench_backbone.py wrn 32 --ynn       # XLA:CPU's default YNNPACK convolutions
  python experiments/bench_backbone.py wrn 960 --dtype=bfloat16 --reps=20  # a GPU, bf16

It compiles as jaxssl's steps do (jaxssl.xla.jit: on CPU, XLA's threaded convolutions, where the
chunk flags change nothing); --ynn compiles with XLA's defaults and chunks as layers.Conv then does.

Alternate it with the PyTorch script, nothing else running: absolute times drift between runs
on these machines, ratios measured side by side do not.
"""

import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from absl import app, flags
from flax import nnx

sys.path.insert(0, str(Path(__file__).parents[1]))

from jaxssl import core, xla  # noqa: E402
from jaxssl.methods import _classifier as C  # noqa: E402
from jaxssl.models import convnets  # noqa: E402

flags.DEFINE_integer('chunk', None, "WRN's CPU convolution chunk (unset: its default); 0: none.")
flags.DEFINE_integer(
  'grad_chunk', None, 'CPU weight-gradient chunk of both nets (unset: their default); 0: none.'
)
flags.DEFINE_bool('ynn', False, "XLA:CPU's default compile options: convolutions on YNNPACK.")
flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'], 'Compute dtype (compute_dtype).')
flags.DEFINE_integer('reps', None, 'Timed passes (unset: 4 for wrn, 20 for cnn).')
FLAGS = flags.FLAGS


def main(argv):
  arch, n = argv[1], int(argv[2])
  if FLAGS.ynn:
    xla.compiler_options = lambda: None
    xla.convolutions_on_ynnpack = lambda: jax.default_backend() == 'cpu'
  grad_chunk = {} if FLAGS.grad_chunk is None else {'cpu_grad_chunk': FLAGS.grad_chunk or None}
  grad_chunk['dtype'] = jnp.bfloat16 if FLAGS.dtype == 'bfloat16' else None
  if arch == 'wrn':
    chunk = {} if FLAGS.chunk is None else {'cpu_chunk': FLAGS.chunk or None}
    new = lambda key: convnets.WideResNet(3, 10, rngs=nnx.Rngs(key), **chunk, **grad_chunk)
    shape, k = (32, 32, 3), 4
  elif arch == 'cnn':
    new = lambda key: convnets.SmallCNN(1, 10, rngs=nnx.Rngs(key), **grad_chunk)
    shape, k = (28, 28, 1), 20
  else:
    raise app.UsageError(f"the network is 'wrn' or 'cnn', got {arch!r}")
  net = C.Net(core.graphdef(new))
  _, params, rest = core.split(new(jax.random.key(0)))
  x = jax.random.uniform(jax.random.key(1), (n, *shape))
  grad = xla.jit(jax.grad(lambda p: jnp.sum(net(p, rest, x, train=True)[0])))
  t0 = time.perf_counter()
  compiled = grad.lower(params).compile()
  compile_s = time.perf_counter() - t0
  jax.block_until_ready(compiled(params))
  times = []
  for _ in range(FLAGS.reps or k):
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(params))
    times.append(time.perf_counter() - t0)
  print(
    f'jaxssl {arch} B={n} {FLAGS.dtype} ynn={FLAGS.ynn} chunk={FLAGS.chunk} '
    f'grad_chunk={FLAGS.grad_chunk} '
    f'compile={compile_s:.1f}s '
    f'median={1000 * statistics.median(times):.1f}ms ({jax.devices()[0].device_kind})'
  )


if __name__ == '__main__':
  app.run(main)
