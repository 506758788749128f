# M1+M2 at the authors' horizon on one GPU (issue 14: 4.32 % ± 0.16 after 300 M2 epochs on CPU,
# paper 3.33 %): M1 (`mnist_vae_m2.py:m1`, 300 epochs, 36,000 steps) once on the machine, then the
# authors' M2 phase (`m2_on_m1_paper`: 3,000 epochs at a constant 3e-4, 360,000 steps) for three
# seeds side by side on it, as the authors reused one M1. M1 no longer comes from this machine's
# runs/: no session's runs/ outlives it. Both phases resume from their workdirs while the
# machine is warm (run this again with a new DEADLINE). About 1,930 steps/s for one GAN run
# alone at 100 steps a call, ~640 each for three (2026-11-28); M2's speed there is not known.
#   bash experiments/device/m1m2.sh   (DEADLINE=seconds for the M2 runs; M1_STEPS / M2_STEPS for
#   a short try, e.g. M1_STEPS=300 M2_STEPS=600 on a CPU)
O=${OUT:-/tmp/out}; mkdir -p $O
source experiments/device/setup.sh || exit 1
M1=${M1_DIR:-/tmp/m1}
short=()
if [ -n "${M1_STEPS:-}" ]; then
  short=(--config.num_steps=$M1_STEPS --config.checkpoint_every=$M1_STEPS --config.eval_every=$M1_STEPS)
fi
if [ ! -f $M1/results.json ]; then
  $PY -m jaxssl train --config=experiments/configs/mnist_vae_m2.py:m1 --workdir=$M1 --config.seed=0 \
    --config.steps_per_call=100 "${short[@]}" > $O/m1.log 2>&1 || { tail -n 20 $O/m1.log; exit 1; }
fi
tail -n 2 $O/m1.log 2>/dev/null
cp $M1/metrics.jsonl $O/m1_metrics.jsonl
RUN_CONFIG=experiments/configs/mnist_vae_m2.py:m2_on_m1_paper RUN_STEPS=360000 GAN_K=100 \
  RUN_ARGS="--config.init_from=$M1 --config.init_keys=m1 --config.eval_every=12000 --config.checkpoint_every=12000" \
  GAN_SPEC=${M2_SPEC:-m2_s0:10:0,m2_s1:10:1,m2_s2:10:2} GAN_NO_STOP=1 GAN_STEPS=${M2_STEPS:-} \
  $PY experiments/device/gan_runs.py ${DEADLINE:-400} /tmp/m2runs $O/m2_runs.tar.gz > $O/m2_runs.log 2>&1
tail -n 12 $O/m2_runs.log
