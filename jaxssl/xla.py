"""The XLA compile options of jaxssl's compiled programs (train, eval and sample steps, bench).

On CPU, XLA 0.10 hands every float32 convolution with more than 16 channels to YNNPACK, which ran
each one on a single thread on a 2-core machine: WRN-28-2's training pass over 32 images took as
long on one core as on two. XLA's own (Eigen) convolution uses both: the same pass in ~290 ms
instead of ~410. `jit` compiles with XLA's default YNNPACK fusions less the convolutions, where
this XLA accepts that option, would hand convolutions to YNNPACK, and leaves every other op as its
defaults do; other backends and other XLAs get no options. RESULTS.md has the measurements.
"""

import functools
import re

import jax
import jax.numpy as jnp

YNN_FUSION_TYPES = 'xla_cpu_experimental_ynn_fusion_type'
# XLA 0.10's default list is reductions, single dots and single convolutions (found by comparing
# compiled programs: its XLA_FLAGS form `-individual_convolution` compiles the same ones).
_NO_CONVOLUTIONS = {
  YNN_FUSION_TYPES: 'LIBRARY_FUSION_TYPE_REDUCE,LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT'
}


def instructions(compiled_text: str) -> str:
  """A compiled program's computations without metadata or source locations, to compare."""
  keep = ('%', 'ROOT', 'ENTRY', '}')
  lines = (line for line in compiled_text.splitlines() if line.lstrip().startswith(keep))
  return '\n'.join(re.sub(r', metadata=\{[^}]*\}', '', line) for line in lines)


def _compiled(fun, options: dict | None, *shapes) -> str:
  args = [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]
  return instructions(jax.jit(fun, compiler_options=options).lower(*args).compile().as_text())


def _conv_on_ynnpack(options: dict | None) -> bool:
  """Whether XLA compiles a 32-channel convolution (the smallest it hands over) to YNNPACK."""
  conv = lambda x, k: jax.lax.conv_general_dilated(
    x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')
  )
  text = _compiled(conv, options, (1, 8, 8, 32), (3, 3, 32, 32))
  return '"__ynn_fusion"' in text  # the fusion kind in its backend_config


def _same_without_convolutions(options: dict) -> bool:
  """Whether `options` compile a program of dots and reductions as XLA's defaults do."""
  mlp = lambda x, w: jax.nn.logsumexp(jax.nn.softplus(x @ w), -1).sum() + jnp.max(x)
  shapes = (64, 256), (256, 128)
  return _compiled(mlp, options, *shapes) == _compiled(mlp, None, *shapes)


@functools.cache
def compiler_options() -> dict | None:
  """Options that keep convolutions on XLA:CPU's threaded Eigen path; None where not needed or
  not understood (GPU, TPU, an XLA without YNNPACK convolutions, without this option or with
  other defaults)."""
  if jax.default_backend() != 'cpu' or not _conv_on_ynnpack(None):
    return None
  try:
    rerouted = not _conv_on_ynnpack(_NO_CONVOLUTIONS)
  except jax.errors.JaxRuntimeError:  # an XLA that does not know the option or its values
    return None
  if not rerouted or not _same_without_convolutions(_NO_CONVOLUTIONS):
    return None
  return dict(_NO_CONVOLUTIONS)


@functools.cache
def convolutions_on_ynnpack() -> bool:
  """Whether jaxssl's compiled programs run their convolutions on YNNPACK, the only case where
  layers.Conv chunks a batch."""
  return jax.default_backend() == 'cpu' and compiler_options() is None and _conv_on_ynnpack(None)


def jit(fun, **kwargs):
  """jax.jit with `compiler_options()`: call it at top level (JAX refuses options on a jit traced
  inside another transformation)."""
  return jax.jit(fun, compiler_options=compiler_options(), **kwargs)
