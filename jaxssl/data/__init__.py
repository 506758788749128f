"""Datasets, labeled splits and the device input pipeline."""

import jax
import jax.numpy as jnp


def to_float(images: jax.Array) -> jax.Array:
  """uint8 images (sent to the device as uint8: 4x less traffic) to float32 in [0, 1]."""
  return images.astype(jnp.float32) / 255.0
