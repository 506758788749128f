"""Networks, and the two helpers that use NNX modules as pure functions of their state."""

from typing import Any

from flax import nnx


def split(module: nnx.Module):
  """Splits a module once into (graphdef, trainable params, everything else: BN stats, fixed)."""
  return nnx.split(module, nnx.Param, ...)


def apply(graphdef, params, rest, *args, method: str = '__call__', **kwargs) -> tuple[Any, Any]:
  """Calls `method` on the merged module as a pure function; returns (output, updated rest)."""
  # copy: fresh Variables at the current trace level, so BatchNorm may update them inside grad.
  module = nnx.merge(graphdef, params, rest, copy=True)
  out = getattr(module, method)(*args, **kwargs)
  return out, nnx.state(module, nnx.Not(nnx.Param))
