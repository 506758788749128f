"""Command line: `jaxssl train | eval | bench | methods | config`; `jaxssl COMMAND --help` lists a
command's options. Every error ends as one line on stderr and exit code 1."""

import json
import os
import sys

from jaxssl.errors import Preempted, UserError

COMMANDS = {  # command -> (usage, its flags)
  'train': (
    'jaxssl train --config=CONFIG.py[:ARG] --workdir=DIR [--config.KEY=VALUE ...]\n'
    '  Trains into DIR, resuming from its latest checkpoint; writes results.json.',
    ('config', 'workdir', 'distributed'),
  ),
  'eval': (
    'jaxssl eval --workdir=DIR\n  Test error of the latest checkpoint in DIR (writes eval.json).',
    ('workdir', 'distributed'),
  ),
  'bench': (
    'jaxssl bench --config=CONFIG.py[:ARG] [--steps=N] [--warmup=N] [--data=synthetic|real] '
    '[--out=FILE] [--config.KEY=VALUE ...]\n'
    '  Compile time, step time, images/s and memory of the compiled train step.',
    ('config', 'steps', 'warmup', 'data', 'out', 'distributed'),
  ),
  'methods': ('jaxssl methods\n  The methods, each with its paper.', ()),
  'config': (
    'jaxssl config --config=CONFIG.py[:ARG] [--config.KEY=VALUE ...]\n'
    "  Every key of the resolved config, with the method's default where the config changes it.",
    ('config',),
  ),
}


def _usage() -> str:
  lines = ['usage:'] + [f'  {u.splitlines()[0]}' for u, _ in COMMANDS.values()]
  return '\n'.join(lines + ['`jaxssl COMMAND --help` describes a command and its options.'])


def _define(fv, argv):
  from absl import flags
  from ml_collections import config_flags

  # sys_argv: overrides come from these arguments, not the process's (main(argv) in tests).
  config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file.', flag_values=fv, lock_config=True, sys_argv=argv
  )
  flags.DEFINE_string('workdir', None, 'Run directory.', flag_values=fv)
  flags.DEFINE_integer('steps', 50, 'Timed steps after warm-up.', flag_values=fv)
  flags.DEFINE_integer('warmup', 5, 'Untimed steps after compilation.', flag_values=fv)
  flags.DEFINE_enum('data', 'synthetic', ['synthetic', 'real'], 'Input to time.', flag_values=fv)
  flags.DEFINE_string('out', None, 'JSON output path.', flag_values=fv)
  flags.DEFINE_bool(
    'distributed', False, 'Multi-host: call jax.distributed.initialize() first.', flag_values=fv
  )


def _help(command: str) -> str:
  from absl import flags

  usage, names = COMMANDS[command]
  fv = flags.FlagValues()
  _define(fv, ['jaxssl'])
  lines = [f'usage: {usage}', '', 'options:'] if names else [f'usage: {usage}']
  for name in names:
    flag = fv[name]
    default = '' if flag.default is None else f' (default: {flag.default})'
    lines.append(f'  --{name}: {flag.help}{default}')
  if 'config' in names:
    lines.append('  --config.KEY=VALUE: override one key (`jaxssl config` lists them).')
  return '\n'.join(lines)


def _flags(argv):
  from absl import flags

  fv = flags.FlagValues()
  _define(fv, argv)
  for arg in argv:  # ml_collections reports a missing file only when the config is first read
    if arg.startswith('--config='):
      path = arg.split('=', 1)[1].split(':', 1)[0]
      if not os.path.isfile(path):
        raise UserError(f'config file {path} does not exist')
  try:
    fv(argv)
  except flags.Error:
    raise
  except Exception as e:  # the config file itself, or ml_collections on --config.UNKNOWN=...
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


def methods_table() -> str:
  """One line per method: its name and the first line of its docstring (which names its paper)."""
  from jaxssl import methods

  names = methods.available()
  width = max(map(len, names))
  lines = []
  for name in names:
    doc = (methods.get(name).__doc__ or '').strip().splitlines()
    lines.append(f'{name:<{width}}  {doc[0] if doc else ""}')
  return '\n'.join(lines)


def config_table(config) -> str:
  """Every resolved key = value, and the default where the config changed it."""
  from jaxssl import config as config_lib

  resolved = config_lib.resolve(config)
  defaults = config_lib.base_config(resolved.method)
  width = max(map(len, resolved))
  lines = []
  for key in sorted(resolved):
    value, default = resolved[key], defaults[key]
    same = (list(value), list(default)) if isinstance(value, tuple | list) else (value, default)
    note = '' if same[0] == same[1] else f'  (default: {default!r})'
    lines.append(f'{key:<{width}} = {value!r}{note}')
  return '\n'.join(lines)


def _run(command: str, fv) -> None:
  if command == 'methods':
    print(methods_table())
    return
  if command in ('train', 'bench', 'config') and fv.config is None:
    raise UserError(f'{command} needs --config=FILE.py')
  if command == 'config':
    print(config_table(fv.config))
    return
  import jax

  if fv.distributed:
    jax.distributed.initialize()
  from jaxssl import bench, train

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
  if len(argv) < 2 or argv[1] not in COMMANDS:
    print(_usage(), file=sys.stderr)
    sys.exit(0 if len(argv) > 1 and argv[1] in ('-h', '--help') else 2)
  command = argv[1]
  if any(a in ('-h', '--help', '-help', '--helpfull') for a in argv[2:]):
    print(_help(command))
    sys.exit(0)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TF only feeds data; its logs are noise
  from absl import flags

  try:
    fv = _flags([argv[0], *argv[2:]])
    unused = [n for n in ('workdir', 'config') if n not in COMMANDS[command][1] and fv[n].present]
    if unused:
      raise UserError(f'{command} takes no --{unused[0]}; see `jaxssl {command} --help`')
    _run(command, fv)
  except (UserError, flags.Error) as e:
    print(f'jaxssl: error: {_one_line(e)}', file=sys.stderr)
    sys.exit(1)
  except Preempted as e:
    print(f'jaxssl: {e}', file=sys.stderr)
    sys.exit(Preempted.EXIT_CODE)
  except KeyboardInterrupt:
    print('jaxssl: interrupted; resume by running the same command again', file=sys.stderr)
    sys.exit(130)
