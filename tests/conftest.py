"""Eight CPU devices, so the sharded code paths run in CI; XLA tuned for a suite of small programs;
a compilation cache (tests/helpers.py: the shared pieces)."""

import os

# LLVM at -O0: most tests run a few steps of many programs, so compiling dominates (init ~5x
# faster to compile, a step ~1.5x) while the steps run ~3x slower. The learning tests compile
# their steps at full optimization (helpers.optimized).
# XLA:CPU's older elemental emitters instead of its fusion emitters: a method's step compiles in
# ~55 % of the time (same programs; tests compare programs compiled alike).
os.environ['XLA_FLAGS'] = (
  os.environ.get('XLA_FLAGS', '')
  + ' --xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0'
  + ' --xla_cpu_use_fusion_emitters=false'
).strip()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import tempfile  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

from tests import helpers  # noqa: E402

# Tests build the same programs many times (a method's step for several seeds, the same backbone's
# init for nine methods); a compilation cache lets XLA compile each once per session. It starts
# empty, and the environment carries it to pytest-xdist workers and the subprocesses tests start.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _XLA_CACHE = tempfile.TemporaryDirectory(prefix='jaxssl-tests-xla-')
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _XLA_CACHE.name
os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '0'
jax.config.update('jax_compilation_cache_dir', os.environ['JAX_COMPILATION_CACHE_DIR'])
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)


@pytest.fixture(scope='session')
def mnist():
  return helpers.mnist()


assert jax.device_count() == 8, 'conftest must set XLA_FLAGS before jax initializes'


def pytest_collection_modifyitems(config, items):
  # The tests of one case (a method, or 'method+strong_augment') share its compiled step through
  # helpers.first_steps' cache, which lives in one process: run them on one xdist worker
  # (tests/run.sh passes --dist loadgroup).
  for item in items:
    case = getattr(item, 'callspec', None) and item.callspec.params.get('case')
    if case:
      item.add_marker(pytest.mark.xdist_group(case))
