"""Configs: the keys every run has, plus the knobs its method declares; anything else is an error.

Experiment files under experiments/configs/ start from `base_config(method)` and change values.
"""

import difflib
import json

import jax
import ml_collections

from jaxssl import methods
from jaxssl.errors import UserError

COMMON = dict(
  method='improved_gan',  # a file under jaxssl/methods/
  dataset='mnist',  # a TFDS name
  data_dir='',  # '' = $JAXSSL_DATA_DIR or ~/tensorflow_datasets
  seed=0,  # labeled split (unless split_seed is set), init and every per-step key
  split_seed=-1,  # >= 0: draws the labeled split instead of seed (the authors' --seed_data)
  # How the labeled split is drawn: 'per_class' (each class's indices permuted by the split seed,
  # the first labels_per_class kept) or 'improved_gan' (Salimans et al.'s MNIST script: one
  # np.random.RandomState(split_seed) permutation of the original file order, the first
  # labels_per_class of each class; split_seed=1 is their default split, MNIST only).
  split_recipe='per_class',
  labels_per_class=10,
  num_steps=1000,  # total train steps; every schedule derives from it
  batch_size=100,  # labeled images per step, global over all devices
  uratio=1,  # unlabeled images per labeled image (FixMatch's mu)
  log_every=100,
  eval_every=1000,
  checkpoint_every=1000,
  # Train steps per compiled call (a lax.scan over that many steps' batches): on a GPU a small
  # model's step is bound by the host (~2.5 ms a call for the GAN on an H100), so several steps
  # a call go faster. Calls end at every log, eval and checkpoint step. Results equal one step a
  # call within float rounding (another program), so it may change when a run resumes. Each
  # distinct call length compiles once; the input queue holds up to 3 calls' batches.
  # 0 = auto: ACCELERATOR_STEPS_PER_CALL on a GPU or TPU, 1 on CPU, decided when the run is built
  # (after jax.distributed.initialize, which must come before anything asks for the backend).
  steps_per_call=1,
  keep_checkpoints=3,
  eval_batch_size=1000,
  num_samples=100,  # images in each sample grid of generative methods
  init_examples=500,  # training images for data-dependent init
  # A workdir of an earlier run: a new run starts the method-state entries named in init_keys
  # (comma-separated, '' = all) from its latest checkpoint, e.g. M1+M2's M1 trained once and
  # reused by every M2 seed, as the authors did.
  init_from='',
  init_keys='',
)
SPLIT_RECIPES = ('per_class', 'improved_gan')
# Keys that may change when a run is resumed: they do not change what is computed.
OPERATIONAL = frozenset(
  {
    'data_dir',
    'log_every',
    'eval_every',
    'checkpoint_every',
    'steps_per_call',
    'keep_checkpoints',
    'eval_batch_size',
    'num_samples',
  }
)
POSITIVE = (
  'num_steps',
  'batch_size',
  'uratio',
  'log_every',
  'eval_every',
  'checkpoint_every',
  'keep_checkpoints',
  'eval_batch_size',
  'num_samples',
  'init_examples',
)
ACCELERATOR_STEPS_PER_CALL = 100


def steps_per_call(config) -> int:
  """config.steps_per_call with 0 (auto) decided by the backend: ACCELERATOR_STEPS_PER_CALL on a
  GPU or TPU, where a small model's step is bound by the host (one paper-length GAN run on an
  H100: ~330 steps/s at 1 a call, ~1,930 at 100; RESULTS.md), and 1 on CPU, where more gains
  little and the recorded CPU runs used 1 (so their commands still repeat them bit for bit).
  Asks for the backend, so call it only once jax.distributed is up."""
  if config.steps_per_call:
    return config.steps_per_call
  return 1 if jax.default_backend() == 'cpu' else ACCELERATOR_STEPS_PER_CALL


def base_config(method: str) -> ml_collections.ConfigDict:
  """Every key a run of `method` accepts, at its default."""
  return ml_collections.ConfigDict({**COMMON, 'method': method, **methods.get(method).defaults()})


def resolve(config) -> ml_collections.ConfigDict:
  """Checks keys, types and values; fills defaults; returns a locked copy."""
  config = dict(config.to_dict() if hasattr(config, 'to_dict') else config)
  defaults = {**COMMON, **methods.get(config.get('method', COMMON['method'])).defaults()}
  unknown = sorted(set(config) - set(defaults))
  if unknown:
    hints = [
      f'{k!r} (did you mean {m[0]!r}?)'
      if (m := difflib.get_close_matches(k, defaults, 1))
      else repr(k)
      for k in unknown
    ]
    raise UserError(f'unknown config key(s) {", ".join(hints)} for method {defaults["method"]!r}')
  resolved = {**defaults, **config}
  for key, default in defaults.items():
    value = resolved[key]
    if isinstance(default, list):
      resolved[key] = value = tuple(value)
    expected = (int, float) if isinstance(default, float) else type(default)
    if isinstance(value, list):
      resolved[key] = value = tuple(value)
    if not isinstance(value, expected) or (
      isinstance(value, bool) and not isinstance(default, bool)
    ):
      raise UserError(f'config key {key!r} must be {type(default).__name__}, got {value!r}')
  for key in POSITIVE:
    if resolved[key] <= 0:
      raise UserError(f'config key {key!r} must be positive, got {resolved[key]}')
  if resolved['steps_per_call'] < 0:
    raise UserError(
      f'config key steps_per_call must be positive or 0 (auto), got {resolved["steps_per_call"]}'
    )
  if resolved['split_recipe'] not in SPLIT_RECIPES:
    raise UserError(
      f'split_recipe must be one of {", ".join(SPLIT_RECIPES)}, got {resolved["split_recipe"]!r}'
    )
  if resolved['split_recipe'] == 'improved_gan' and resolved['dataset'] != 'mnist':
    raise UserError(
      "split_recipe='improved_gan' is the Improved-GAN authors' MNIST draw; "
      f'dataset is {resolved["dataset"]!r}'
    )
  if resolved['init_keys'] and not resolved['init_from']:
    raise UserError(
      f'init_keys={resolved["init_keys"]!r} needs init_from (a workdir to start from)'
    )
  return ml_collections.ConfigDict(resolved).lock()


def init_keys(config) -> list[str] | None:
  """The method-state entries a run takes from `init_from`; None: all of them."""
  keys = [k.strip() for k in config.init_keys.split(',') if k.strip()]
  return keys or None


def split_seed(config) -> int:
  """The seed that draws the labeled split: `split_seed` where set (the same split under every
  seed, as the Improved-GAN code's --seed_data fixes it), else `seed` (each seed its own split)."""
  return config.seed if config.split_seed < 0 else config.split_seed


def to_json(config) -> str:
  return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=list)


def from_json(text: str) -> ml_collections.ConfigDict:
  return resolve(json.loads(text))


def differences(old, new) -> list[str]:
  """Keys whose values differ and that change what a run computes."""
  old, new = old.to_dict(), new.to_dict()
  return sorted(
    k
    for k in set(old) | set(new)
    if k not in OPERATIONAL and _norm(old.get(k)) != _norm(new.get(k))
  )


def _norm(v):
  return list(v) if isinstance(v, tuple) else v
