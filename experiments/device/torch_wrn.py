"""PyTorch's WRN-28-2 training step on a GPU, for side-by-side ratios with
`experiments/bench_backbone.py wrn N` there: the network of ../shared/bench/torch_reference.py
(which times CPUs only), the same step (forward, cross-entropy, backward, SGD with Nesterov),
timed with CUDA events.

  python3 experiments/device/torch_wrn.py 960       # float32 (cuDNN's default: TF32 convolutions)
  python3 experiments/device/torch_wrn.py 960 bf16     # autocast to bfloat16
Channels-last memory format in both; median of 20 steps after 5.
"""

import statistics
import sys

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
  def __init__(self, cin, cout, stride, activate_before_residual):
    super().__init__()
    self.bn1, self.bn2 = nn.BatchNorm2d(cin, eps=1e-3), nn.BatchNorm2d(cout, eps=1e-3)
    self.c1, self.c2 = nn.Conv2d(cin, cout, 3, stride, 1), nn.Conv2d(cout, cout, 3, 1, 1)
    self.sc = nn.Conv2d(cin, cout, 1, stride) if cin != cout else None
    self.abr = activate_before_residual

  def forward(self, x0):
    x = F.leaky_relu(self.bn1(x0), 0.1)
    if self.abr:
      x0 = x
    x = self.c2(F.leaky_relu(self.bn2(self.c1(x)), 0.1))
    return (self.sc(x0) if self.sc is not None else x0) + x


class WRN(nn.Module):
  def __init__(self, filters=32):
    super().__init__()
    self.stem, blocks, c = nn.Conv2d(3, 16, 3, 1, 1), [], 16
    for scale in range(3):
      w = filters << scale
      blocks.append(Block(c, w, 2 if scale else 1, scale == 0))
      blocks += [Block(w, w, 1, False) for _ in range(3)]
      c = w
    self.blocks, self.bn, self.head = (
      nn.Sequential(*blocks),
      nn.BatchNorm2d(c, eps=1e-3),
      nn.Linear(c, 10),
    )

  def forward(self, x):
    y = F.leaky_relu(self.bn(self.blocks(self.stem(2 * x - 1))), 0.1)
    return self.head(y.mean((2, 3)))


def main():
  batch, bf16 = int(sys.argv[1]), 'bf16' in sys.argv[2:]
  dev = 'cuda' if torch.cuda.is_available() else 'cpu'
  torch.backends.cudnn.benchmark = True  # cuDNN picks its algorithms, as XLA autotunes its own
  net = WRN().to(dev).to(memory_format=torch.channels_last)
  opt = torch.optim.SGD(net.parameters(), 0.03, momentum=0.9, nesterov=True)
  x = torch.rand(batch, 3, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
  y = torch.randint(0, 10, (batch,), device=dev)

  def step():
    opt.zero_grad(set_to_none=True)
    with torch.autocast(dev, dtype=torch.bfloat16, enabled=bf16):
      loss = F.cross_entropy(net(x), y)
    loss.backward()
    opt.step()

  times = []
  for i in range(25):
    if dev == 'cuda':
      start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
      start.record()
      step()
      end.record()
      torch.cuda.synchronize()
      ms = start.elapsed_time(end)
    else:
      import time

      t0 = time.perf_counter()
      step()
      ms = 1e3 * (time.perf_counter() - t0)
    if i >= 5:
      times.append(ms)
  name = torch.cuda.get_device_name() if dev == 'cuda' else 'cpu'
  med = statistics.median(times)
  print(
    f'torch wrn B={batch} {"bf16" if bf16 else "fp32"} median={med:.2f}ms '
    f'({batch / med * 1e3:.0f} images/s; {name}, torch {torch.__version__})'
  )


if __name__ == '__main__':
  main()
