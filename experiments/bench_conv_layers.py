"""Times each convolution shape of WRN-28-2 alone, its forward, input gradient and kernel gradient,
in jaxssl's compiled form or in PyTorch: where the gap between the two backbone passes
(experiments/bench_backbone.py, ../shared/bench/torch_reference.py) comes from, layer by layer.

  python experiments/bench_conv_layers.py jax 128           # jaxssl.xla.jit, as the steps compile
  ~/torchref/bin/python experiments/bench_conv_layers.py torch 128 [cl]   # PyTorch, 2 threads

Each line: median of 10 calls after one of the forward, of the forward with the input gradient and
of the forward with the kernel gradient (each gradient is the difference to the forward), and of
all three together, for a given output cotangent; `x n` is how often WRN-28-2 has the shape, and
the last line sums all three over the network. Run the two alternately with nothing beside them:
only their ratios count on these machines.
"""

import statistics
import sys
import time
from pathlib import Path

# (input size, input channels, output channels, stride, kernel size, count in WRN-28-2)
LAYERS = (
  (32, 3, 16, 1, 3, 1),
  (32, 16, 32, 1, 3, 1),
  (32, 16, 32, 1, 1, 1),
  (32, 32, 32, 1, 3, 7),
  (32, 32, 64, 2, 3, 1),
  (32, 32, 64, 2, 1, 1),
  (16, 64, 64, 1, 3, 7),
  (16, 64, 128, 2, 3, 1),
  (16, 64, 128, 2, 1, 1),
  (8, 128, 128, 1, 3, 7),
)


def _median_ms(f, reps=10):
  f()
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    f()
    times.append(time.perf_counter() - t0)
  return 1000 * statistics.median(times)


def _jax(n, _):
  sys.path.insert(0, str(Path(__file__).parents[1]))
  import jax

  from jaxssl import xla

  def conv(x, k, stride):
    pad = 'SAME' if k.shape[0] == 3 else 'VALID'
    dims = ('NHWC', 'HWIO', 'NHWC')
    return jax.lax.conv_general_dilated(x, k, (stride, stride), pad, dimension_numbers=dims)

  def forward_and(grad):
    # The forward's output is returned too: PyTorch computes it, and XLA would drop it.
    def program(x, k, dy, stride):
      y, back = jax.vjp(lambda x, k: conv(x, k, stride), x, k)
      dx, dk = back(dy)
      return (y, dx, dk) if grad == 'all' else (y, dx if grad == 'dx' else dk)

    return program

  def timer(hw, ci, co, stride, size):
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (n, hw, hw, ci))
    k = 0.1 * jax.random.normal(keys[1], (size, size, ci, co))
    dy = jax.random.normal(keys[2], (n, hw // stride, hw // stride, co))
    programs = {'fwd': lambda x, k, dy, stride: conv(x, k, stride)}
    programs.update({grad: forward_and(grad) for grad in ('dx', 'dw', 'all')})
    compiled = {
      name: xla.jit(f, static_argnums=3).lower(x, k, dy, stride).compile()
      for name, f in programs.items()
    }
    return {name: lambda c=c: jax.block_until_ready(c(x, k, dy)) for name, c in compiled.items()}

  return timer, f'jax {jax.__version__} ({jax.devices()[0].device_kind})'


def _torch(n, channels_last):
  import torch
  import torch.nn.functional as F

  torch.set_num_threads(2)
  fmt = torch.channels_last if channels_last else torch.contiguous_format

  def timer(hw, ci, co, stride, size):
    x = torch.randn(n, ci, hw, hw).contiguous(memory_format=fmt)
    k = (0.1 * torch.randn(co, ci, size, size)).contiguous(memory_format=fmt)
    dy = torch.randn(n, co, hw // stride, hw // stride).contiguous(memory_format=fmt)
    pad = size // 2

    def grads(need_x, need_k):
      xg = x.detach().requires_grad_(need_x)
      kg = k.detach().requires_grad_(need_k)
      if need_x or need_k:
        F.conv2d(xg, kg, None, stride, pad).backward(dy)
      else:
        with torch.no_grad():
          F.conv2d(xg, kg, None, stride, pad)

    return {
      'fwd': lambda: grads(False, False),
      'dx': lambda: grads(True, False),
      'dw': lambda: grads(False, True),
      'all': lambda: grads(True, True),
    }

  return timer, f'torch {torch.__version__} channels_last={channels_last}'


def main():
  if len(sys.argv) < 3 or sys.argv[1] not in ('jax', 'torch'):
    sys.exit(__doc__)
  n = int(sys.argv[2])
  timer, name = (_jax if sys.argv[1] == 'jax' else _torch)(n, 'cl' in sys.argv[3:])
  print(f'{name}, {n} images; ms: fwd, dx, dw (each gradient less the forward), all three')
  total = dict.fromkeys(('fwd', 'dx', 'dw', 'all'), 0.0)
  for hw, ci, co, stride, size, count in LAYERS:
    ms = {key: _median_ms(f) for key, f in timer(hw, ci, co, stride, size).items()}
    ms['dx'] -= ms['fwd']
    ms['dw'] -= ms['fwd']
    for key in total:
      total[key] += count * ms[key]
    print(
      f'{hw:2d}x{hw:<2d} {ci:3d}->{co:<3d} {size}x{size} stride {stride} x {count}: '
      + ' '.join(f'{ms[key]:7.2f}' for key in total)
    )
  print('WRN-28-2, all layers times their count: ' + ' '.join(f'{v:7.1f}' for v in total.values()))


if __name__ == '__main__':
  main()
