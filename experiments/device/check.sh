# Device call 1 (~5 min on an H100): a 2,000-step Improved-GAN run through the CLI; WRN-28-2's
# training pass over 960 images, jaxssl and PyTorch side by side, float32 and bfloat16; then
# experiments/bench_all.py alone on the GPU (its rows as they come, cut at BENCH_S seconds).
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
O=${OUT:-/tmp/out}; mkdir -p $O
source experiments/device/setup.sh || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
el smoke
S=${SMOKE_STEPS:-2000}
$PY -m jaxssl train --config=experiments/configs/mnist_improved_gan.py:quick --workdir=/tmp/smoke \
  --config.num_steps=$S --config.eval_every=$S --config.checkpoint_every=$S > $O/smoke.log 2>&1
tail -n 2 $O/smoke.log
el steps_per_call
# Host-bound small steps: one step a call against 100 (README: steps_per_call), median per step.
for k in 1 100; do
  timeout 90 $PY -m jaxssl bench --config=experiments/configs/mnist_improved_gan.py:quick \
    --steps=20 --warmup=3 --config.steps_per_call=$k 2>&1 | grep -E 'steps_per_call|step_ms_median'
done | tee $O/steps_per_call.log
el backbones
for dtype in float32 bfloat16; do
  timeout 120 $PY experiments/bench_backbone.py wrn ${VIEWS:-960} --dtype=$dtype --reps=20 2>&1 | tail -n 1
done | tee $O/backbones.log
for a in '' bf16; do timeout 120 $PY experiments/device/torch_wrn.py ${VIEWS:-960} $a 2>&1 | tail -n 1; done \
  | tee -a $O/backbones.log
el bench
timeout ${BENCH_S:-170} $PY experiments/bench_all.py --suite=cifar10 \
  --methods=${BENCH_METHODS:-fixmatch,improved_gan,ladder,vae_m2,pseudo_label} \
  --steps=${BENCH_STEPS:-30} --out=$O/bench_all.md > $O/bench.log 2>&1
grep -E '^\|' $O/bench.log
el done
