# The PyTorch port of the authors' Improved-GAN script (experiments/results/gan20/torch_port.py)
# on the GPU, several runs side by side, each on jaxssl's labeled split of its seed: does the
# authors' recipe reach the paper's numbers (100 labels: 93 ± 6.5 errors; 20: 1,677 ± 452) where
# jaxssl's does not (issue 14)? Sourced or run after setup.sh; the logs come back in one tar.gz.
#   PORT_SPEC=lab10_s0:150,lab2_s0:150 PORT_S=420 bash experiments/device/port_runs.sh
# (split:epochs; each run is stopped at PORT_S seconds, its log holds every epoch so far).
O=${OUT:-/tmp/out}; mkdir -p $O /tmp/port
PY=${PY:-python3}
$PY - <<'P' || exit 1
import numpy as np
from jaxssl.data import datasets
d = np.load('.kit/mnist.npz')
splits = {f'lab{n}_s{s}': datasets.labeled_subset(d['train_labels'], 10, n, s, 'mnist')
          for n in (2, 10) for s in range(8)}
np.savez('/tmp/port/mnist_splits.npz', x_train=d['train_images'], y_train=d['train_labels'],
         x_test=d['test_images'], y_test=d['test_labels'], **splits)
P
for r in ${PORT_SPEC//,/ }; do
  timeout ${PORT_S:-420} $PY experiments/results/gan20/torch_port.py /tmp/port/mnist_splits.npz \
    ${r%%:*} ${r##*:} > /tmp/port/port_${r%%:*}.log 2>&1 &
done
wait
tail -n 2 /tmp/port/port_*.log
tar czf $O/port_runs.tar.gz -C /tmp/port $(cd /tmp/port && ls port_*.log)
