#!/usr/bin/env bash
# Trains every method of experiments/configs/mnist_ssl.py at 10 and 100 labels, one after the
# other, into runs/mnist_ssl/<method>_<labels>; then prints the table. Resumable: a finished
# run is skipped, an interrupted one resumes from its checkpoint. Extra flags go to every run,
# e.g. --config.seed=1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${RUNS:-runs/mnist_ssl}
for labels in 10 100; do
  for method in supervised pseudo_label pi_model mean_teacher vat mixmatch uda fixmatch flexmatch; do
    workdir="$root/${method}_${labels}"
    [[ -f "$workdir/results.json" ]] && continue
    jaxssl train --config="experiments/configs/mnist_ssl.py:${method},${labels}" \
      --workdir="$workdir" "$@"
  done
done
python experiments/report.py "$root"
