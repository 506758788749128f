# Sourced first in every device call (repo root, .kit carried): installs the wheels the machine
# lacks, puts the TF/TFDS shims on the path, and falls back to our tested flax/optax/orbax/chex
# if the machine's are outside pyproject's ranges.
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_CPP_MIN_LOG_LEVEL=2
export JAXSSL_KIT=$PWD/.kit
PY=${PY:-python3}
pip_in() { $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$@"; }
pip_in /tmp/site .kit/*.whl || return 1
export PYTHONPATH=/tmp/site:$PWD/experiments/device/shim:$PWD
if ! $PY - <<'P'
import chex, flax, optax
import orbax.checkpoint as ocp
from packaging.version import Version as V

ok = V('0.12') <= V(flax.__version__) < V('0.13') and V('0.2.5') <= V(optax.__version__) < V('0.3')
ok = ok and V('0.11') <= V(ocp.__version__) < V('0.13')
print('machine: flax', flax.__version__, 'optax', optax.__version__, 'orbax', ocp.__version__,
      'chex', chex.__version__, 'in range' if ok else 'OUT OF RANGE: using .kit/fallback')
raise SystemExit(0 if ok else 1)
P
then
  pip_in /tmp/site2 .kit/fallback/*.whl || return 1
  export PYTHONPATH=/tmp/site2:$PYTHONPATH
fi
$PY -c "
import jax
print('jax', jax.__version__, 'devices', jax.devices(), jax.devices()[0].device_kind)" || return 1
