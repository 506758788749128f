"""A picture of what the augmentation recipes do: originals, weak views and strong views.

  python experiments/augment_grid.py --dataset=mnist --recipe=digits --out=docs/mnist_views.png

Row 1: the images; row 2: a weak view of each; the rest: strong views, one draw per row.
"""

import sys

import jax
import numpy as np
from absl import app, flags

from jaxssl.data import augment, datasets, to_float
from jaxssl.metrics import image_grid, save_png

flags.DEFINE_string('dataset', 'mnist', 'TFDS name (real data).')
flags.DEFINE_enum('recipe', 'digits', list(augment.RECIPES), 'Augmentation recipe.')
flags.DEFINE_integer('images', 12, 'Images per row.')
flags.DEFINE_integer('strong_rows', 6, 'Rows of strong views.')
flags.DEFINE_float('op_prob', 0.5, 'Probability of each RandAugment op.')
flags.DEFINE_float('cutout_size', 0.5, 'Cutout side (or its maximum) as a fraction of the image.')
flags.DEFINE_bool('flip', False, 'Random horizontal flips.')
flags.DEFINE_string('out', None, 'PNG path.')
FLAGS = flags.FLAGS


def main(argv):
  ds = datasets.load(FLAGS.dataset)
  rng = np.random.default_rng(0)
  x = to_float(ds.train_images[rng.choice(len(ds.train_images), FLAGS.images, replace=False)])
  recipe = augment.RECIPES[FLAGS.recipe]
  key = jax.random.key(0)
  rows = [x, augment.weak(x, key, flip=FLAGS.flip, recipe=recipe)]
  for k in jax.random.split(jax.random.fold_in(key, 1), FLAGS.strong_rows):
    rows.append(
      augment.strong(
        x, k, op_prob=FLAGS.op_prob, cutout_size=FLAGS.cutout_size, flip=FLAGS.flip, recipe=recipe
      )
    )
  grid = image_grid(np.concatenate([np.asarray(r) for r in rows]), rows=len(rows))
  grid = np.kron(grid, np.ones((2, 2, 1)))  # twice the size, so single pixels stay visible
  save_png(FLAGS.out or f'{FLAGS.dataset}_{FLAGS.recipe}_views.png', grid)
  print(FLAGS.out, file=sys.stderr)


if __name__ == '__main__':
  app.run(main)
