"""A PyTorch port of the authors' train_mnist_feature_matching.py (openai/improved-gan), written
from their Theano/Lasagne code, not from jaxssl, to check jaxssl's Improved-GAN at few labels.

Same as theirs: D 784-1000-500-250-250-250-10 with Gaussian noise (0.3 on the input, 0.5 after
each hidden layer), weight-normalized dense layers (theta ~ N(0, 0.1²), fixed hidden scales, the
output's trainable) with data-dependent init on 500 training images (noise on); G 100-500-500-784
(uniform noise, dense + batch norm without scale + softplus, a weight-normalized sigmoid output,
Glorot-uniform weights); Adam(lr 0.003, beta1 0.5, eps 1e-8 inside the square root) for both;
feature matching on the last hidden layer with G's own unlabeled batch; D's Polyak average
a += 1e-4 (p - a) from 0 without debiasing, evaluated on the test set. One labeled split from the
npz (jaxssl's split of the same seed, so both see the same labeled images).

  ~/torchref/bin/python experiments/results/gan20/torch_port.py /tmp/mnist_splits.npz lab2_s1 EPOCHS

On a GPU where there is one (experiments/device/port_runs.sh); PORT_STEPS=N cuts each epoch to N
steps, to try it out.
"""

import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
DEV = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
STEPS = int(__import__('os').environ.get('PORT_STEPS', 600))
data = np.load(sys.argv[1])
split, epochs = sys.argv[2], int(sys.argv[3])
seed = int(split.split('_s')[1])
rng = np.random.RandomState(seed)
torch.manual_seed(seed)
x_all = torch.tensor(data['x_train'].reshape(60000, -1) / 255.0, dtype=torch.float32, device=DEV)
y_all = torch.tensor(data['y_train'].astype(np.int64), device=DEV)
x_test = torch.tensor(data['x_test'].reshape(10000, -1) / 255.0, dtype=torch.float32, device=DEV)
y_test = torch.tensor(data['y_test'].astype(np.int64), device=DEV)
lab = torch.tensor(data[split], device=DEV)
txs, tys = x_all[lab], y_all[lab]


class WNDense(torch.nn.Module):
  def __init__(self, n_in, n_out, train_scale):
    super().__init__()
    self.theta = torch.nn.Parameter(0.1 * torch.randn(n_in, n_out))
    self.b = torch.nn.Parameter(torch.zeros(n_out))
    scale = torch.ones(n_out)
    self.scale = torch.nn.Parameter(scale) if train_scale else torch.nn.Buffer(scale)

  def forward(self, x, init=False):
    w = self.theta * (self.scale / self.theta.square().sum(0).sqrt())
    a = x @ w
    if init:
      m = a.mean(0)
      a = a - m
      std = a.square().mean(0).sqrt()
      with torch.no_grad():
        self.scale.div_(std)
        self.b.copy_(-m / std)
      return a / std
    return a + self.b


class D(torch.nn.Module):
  def __init__(self):
    super().__init__()
    dims = [784, 1000, 500, 250, 250, 250]
    self.hidden = torch.nn.ModuleList(WNDense(a, b, False) for a, b in zip(dims[:-1], dims[1:]))
    self.out = WNDense(250, 10, True)

  def forward(self, x, noise=True, init=False):
    h = x + 0.3 * torch.randn_like(x) if noise else x
    for layer in self.hidden:
      h = torch.relu(layer(h, init))
      feat = h
      h = h + 0.5 * torch.randn_like(h) if noise else h
    return self.out(h, init), feat


class G(torch.nn.Module):
  def __init__(self):
    super().__init__()
    self.l1, self.l2 = torch.nn.Linear(100, 500, bias=False), torch.nn.Linear(500, 500, bias=False)
    self.b1, self.b2 = torch.nn.Parameter(torch.zeros(500)), torch.nn.Parameter(torch.zeros(500))
    self.w3 = torch.nn.Parameter(torch.empty(500, 784))
    self.s3, self.b3 = torch.nn.Parameter(torch.ones(784)), torch.nn.Parameter(torch.zeros(784))
    for w in (self.l1.weight, self.l2.weight):
      torch.nn.init.xavier_uniform_(w)
    torch.nn.init.xavier_uniform_(self.w3)

  def forward(self, n):
    h = torch.rand(n, 100, device=DEV)
    for lin, b in ((self.l1, self.b1), (self.l2, self.b2)):
      a = lin(h)
      a = (a - a.mean(0)) / (1e-6 + a.var(0, unbiased=False)).sqrt()  # batch stats, no scale
      h = F.softplus(a + b)
    w = self.w3 * (self.s3 / (1e-6 + self.w3.square().sum(0)).sqrt())
    return torch.sigmoid(h @ w + self.b3)


def adam(params, lr=0.003, b1=0.5, b2=0.999):
  state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
  t = [0]

  def step():
    t[0] += 1
    with torch.no_grad():
      for p, (m, v) in zip(params, state):
        m.mul_(b1).add_(p.grad, alpha=1 - b1)
        v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
        p.sub_(lr * (m / (1 - b1 ** t[0])) / (v / (1 - b2 ** t[0]) + 1e-8).sqrt())
        p.grad = None

  return step


d, g = D().to(DEV), G().to(DEV)
perm = rng.permutation(60000)
with torch.no_grad():
  g(100)
  d(x_all[torch.tensor(perm[:500], device=DEV)], init=True)
d_params, g_params = list(d.parameters()), list(g.parameters())
d_step, g_step = adam(d_params), adam(g_params)
avg = [torch.zeros_like(p) for p in d_params]
lse = lambda z: torch.logsumexp(z, 1)


def test_errors(polyak=True):
  live = [p.detach().clone() for p in d_params]
  with torch.no_grad():
    for p, a in zip(d_params, avg if polyak else live):
      p.copy_(a)
    wrong = sum(
      int((d(x_test[i : i + 1000], noise=False)[0].argmax(1) != y_test[i : i + 1000]).sum())
      for i in range(0, 10000, 1000)
    )
    for p, v in zip(d_params, live):
      p.copy_(v)
  return wrong


t0 = time.time()
for epoch in range(epochs):
  reps = math.ceil(60000 / len(lab))
  order = np.concatenate([rng.permutation(len(lab)) for _ in range(reps)])
  unl, unl2 = rng.permutation(60000), rng.permutation(60000)
  order, unl, unl2 = (torch.tensor(a, device=DEV) for a in (order, unl, unl2))
  for t in range(STEPS):
    i = order[t * 100 : (t + 1) * 100]
    xl, yl = txs[i], tys[i]
    xu, xu2 = x_all[unl[t * 100 : (t + 1) * 100]], x_all[unl2[t * 100 : (t + 1) * 100]]
    out_l, out_u, out_f = d(xl)[0], d(xu)[0], d(g(100).detach())[0]
    l_lab = out_l.gather(1, yl[:, None])[:, 0]
    loss_lab = -l_lab.mean() + lse(out_l).mean()
    l_unl = lse(out_u)
    loss_unl = (
      -0.5 * l_unl.mean() + 0.5 * F.softplus(l_unl).mean() + 0.5 * F.softplus(lse(out_f)).mean()
    )
    (loss_lab + loss_unl).backward()
    d_step()
    with torch.no_grad():
      for p, a in zip(d_params, avg):
        a.add_(1e-4 * (p - a))
    feat_f = d(g(100))[1].mean(0)
    feat_r = d(xu2)[1].mean(0)
    ((feat_f - feat_r.detach()).square().mean()).backward()  # D's grads from this are dropped
    for p in d_params:
      p.grad = None
    g_step()
  print(
    f'epoch {epoch + 1}: {time.time() - t0:.0f} s, loss_lab {loss_lab.item():.4f}, '
    f'loss_unl {loss_unl.item():.4f}, '
    f'test errors: Polyak {test_errors()}, raw {test_errors(False)}',
    flush=True,
  )
