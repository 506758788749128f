"""Command line: `jaxssl train | eval | bench`; every error ends as one line on stderr, exit 1."""

import json
import os
import sys

USAGE = """usage:
  jaxssl train --config=CONFIG.py[:ARG] --workdir=DIR [--config.KEY=VALUE ...]
  jaxssl eval  --workdir=DIR
  jaxssl bench --config=CONFIG.py[:ARG] [--steps=N] [--data=synthetic|real] [--out=FILE]
options for all: --distributed (multi-host: calls jax.distributed.initialize() first)"""


def _flags(argv):
  from absl import flags
  from ml_collections import config_flags

  fv = flags.FlagValues()
  # sys_argv: overrides come from these arguments, not the process's (main(argv) in tests).
  config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file.', flag_values=fv, lock_config=True, sys_argv=argv
  )
  flags.DEFINE_string('workdir', None, 'Run directory.', flag_values=fv)
  flags.DEFINE_integer('steps', 50, 'bench: timed steps after warm-up.', flag_values=fv)
  flags.DEFINE_integer('warmup', 5, 'bench: untimed steps after compilation.', flag_values=fv)
  flags.DEFINE_enum('data', 'synthetic', ['synthetic', 'real'], 'bench: input.', flag_values=fv)
  flags.DEFINE_string('out', None, 'bench: JSON output path.', flag_values=fv)
  flags.DEFINE_bool('distributed', False, 'Multi-host run.', flag_values=fv)
  for arg in argv:  # ml_collections reports a missing file only when the config is first read
    if arg.startswith('--config='):
      path = arg.split('=', 1)[1].split(':', 1)[0]
      if not os.path.isfile(path):
        from jaxssl.errors import UserError

        raise UserError(f'config file {path} does not exist')
  try:
    fv(argv)
  except flags.Error:
    raise
  except Exception as e:  # the config file itself, or ml_collections on --config.UNKNOWN=...
    from jaxssl.errors import UserError

    key = str(e).strip('"\'')
    if isinstance(e, AttributeError | KeyError) and any(
      a.startswith(f'--config.{key}=') for a in argv
    ):
      raise UserError(f'unknown config key {key!r} in a --config.{key}=VALUE override') from None
    raise UserError(f'cannot load the config: {type(e).__name__}: {e}') from None
  return fv


def load_config(config: str, overrides: list[str] = ()):
  """The locked config of `FILE.py[:ARG]` plus `--config.KEY=VALUE` overrides, as `train` reads
  it."""
  return _flags(['jaxssl', f'--config={config}', *overrides]).config


def _run(command: str, fv) -> None:
  import jax

  if fv.distributed:
    jax.distributed.initialize()
  from jaxssl import bench, train
  from jaxssl.errors import UserError

  if command in ('train', 'bench') and fv.config is None:
    raise UserError(f'{command} needs --config=FILE.py')
  if command in ('train', 'eval') and not fv.workdir:
    raise UserError(f'{command} needs --workdir=DIR')
  if command == 'train':
    results = train.train_and_evaluate(fv.config, fv.workdir)
    print(
      f'test error {100 * results["test_error"]:.2f}% ({results["test_errors"]}/'
      f'{results["test_examples"]}) after {results["steps"]} steps, '
      f'{results["wall_seconds"]:.0f} s; results in {fv.workdir}/results.json'
    )
  elif command == 'eval':
    print(json.dumps(train.evaluate_workdir(fv.workdir), indent=2))
  else:
    result = bench.run_bench(fv.config, steps=fv.steps, warmup=fv.warmup, data=fv.data)
    print(bench.table(result))
    out = fv.out or f'bench_{result["method"]}_{result["dataset"]}_{result["data"]}.json'
    bench.write(result, out)
    print(f'wrote {out}')


def _one_line(e: Exception) -> str:
  """The first line and, if the message embeds a traceback, its last line (the actual error)."""
  lines = [line.strip() for line in str(e).splitlines() if line.strip()]
  if not lines:
    return type(e).__name__
  if len(lines) > 1 and any(line.startswith('Traceback') for line in lines):
    return f'{lines[0]} {lines[-1]}'
  return ' '.join(lines)


def main(argv=None) -> None:
  argv = list(sys.argv if argv is None else argv)
  if len(argv) < 2 or argv[1] not in ('train', 'eval', 'bench'):
    print(USAGE, file=sys.stderr)
    sys.exit(0 if len(argv) > 1 and argv[1] in ('-h', '--help') else 2)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TF only feeds data; its logs are noise
  from absl import flags

  from jaxssl.errors import UserError

  try:
    fv = _flags([argv[0], *argv[2:]])
    _run(argv[1], fv)
  except (UserError, flags.Error) as e:
    print(f'jaxssl: error: {_one_line(e)}', file=sys.stderr)
    sys.exit(1)
  except KeyboardInterrupt:
    print('jaxssl: interrupted; resume by running the same command again', file=sys.stderr)
    sys.exit(130)
