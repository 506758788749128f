"""Command line: `jaxssl train | eval | bench | methods | config`; `jaxssl COMMAND --help` lists a
command's options. Every error ends as one line on stderr and exit code 1."""

import json
import os
import sys

from jaxssl.errors import Preempted, UserError

MULTIPROCESS = (
  'distributed',
  'coordinator_address',
  'num_processes',
  'process_id',
  'distributed_timeout',
)
COMMANDS = {  # command -> (usage, its flags)
  'train': (
    'jaxssl train --config=CONFIG.py[:ARG] --workdir=DIR [--config.KEY=VALUE ...]\n'
    '  Trains into DIR, resuming from its latest checkpoint; writes results.json.',
    ('config', 'workdir', *MULTIPROCESS),
  ),
  'eval': (
    'jaxssl eval --workdir=DIR\n  Test error of the latest checkpoint in DIR (writes eval.json).',
    ('workdir', *MULTIPROCESS),
  ),
  'bench': (
    'jaxssl bench --config=CONFIG.py[:ARG] [--steps=N] [--warmup=N] [--data=synthetic|real] '
    '[--out=FILE] [--config.KEY=VALUE ...]\n'
    '  Compile time, step time, images/s and memory of the compiled train step.',
    ('config', 'steps', 'warmup', 'data', 'out', *MULTIPROCESS),
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
  return '\n'.join(
    lines
    + [
      '`jaxssl COMMAND --help` describes a command and its options; `jaxssl --version` the install.'
    ]
  )


def _version() -> str:
  """jaxssl's version and those of the libraries that decide its numbers (for a bug report)."""
  import importlib.metadata

  import jaxssl

  def installed(name):
    try:
      return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      return 'not installed'

  libs = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'tensorflow-datasets')
  return f'jaxssl {jaxssl.__version__} (' + ', '.join(f'{n} {installed(n)}' for n in libs) + ')'


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
    'distributed',
    False,
    "Multi-process with JAX's cluster auto-detection (SLURM, Open MPI, TPU, Kubernetes).",
    flag_values=fv,
  )
  flags.DEFINE_string(
    'coordinator_address',
    None,
    'Multi-process: HOST:PORT of process 0 (default $JAX_COORDINATOR_ADDRESS).',
    flag_values=fv,
  )
  flags.DEFINE_integer(
    'num_processes', None, 'Multi-process: how many (default $JAX_NUM_PROCESSES).', flag_values=fv
  )
  flags.DEFINE_integer(
    'process_id', None, "Multi-process: this one's index (default $JAX_PROCESS_ID).", flag_values=fv
  )
  flags.DEFINE_integer(
    'distributed_timeout',
    300,
    'Seconds to wait for every process to reach the coordinator.',
    flag_values=fv,
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
  import jax

  from jaxssl import config as config_lib

  resolved = config_lib.resolve(config)
  defaults = config_lib.base_config(resolved.method)
  width = max(map(len, resolved))
  lines = []
  for key in sorted(resolved):
    value, default = resolved[key], defaults[key]
    same = (list(value), list(default)) if isinstance(value, tuple | list) else (value, default)
    note = '' if same[0] == same[1] else f'  (default: {default!r})'
    if key == 'steps_per_call' and value == 0:  # no processes to wait for here
      note += f'  (auto: {config_lib.steps_per_call(resolved)} on {jax.default_backend()})'
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
  initialize_processes(_process_spec(fv), fv.distributed, fv.distributed_timeout)
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
    if result['process_index'] != 0:  # every process times the same steps; process 0 reports
      return
    print(bench.table(result))
    out = fv.out or f'bench_{result["method"]}_{result["dataset"]}_{result["data"]}.json'
    bench.write(result, out)
    print(f'wrote {out}')


def _process_spec(fv) -> tuple[str, int, int] | None:
  """(coordinator, num_processes, process_id) from the flags, else the JAX_* environment;
  None for a single process or cluster auto-detection."""
  env = {
    'coordinator_address': os.environ.get('JAX_COORDINATOR_ADDRESS'),
    'num_processes': os.environ.get('JAX_NUM_PROCESSES'),
    'process_id': os.environ.get('JAX_PROCESS_ID'),
  }
  values = {k: fv[k].value if fv[k].value is not None else v for k, v in env.items()}
  given = [k for k, v in values.items() if v is not None]
  if not given:
    return None
  if len(given) < 3:
    missing = sorted(set(values) - set(given))
    raise UserError(
      f'multi-process needs --coordinator_address, --num_processes and --process_id (or their '
      f'JAX_* variables); missing {", ".join("--" + m for m in missing)}'
    )
  address = values['coordinator_address']
  host, _, port = address.rpartition(':')
  if not host or not port.isdigit():
    raise UserError(f'--coordinator_address must be HOST:PORT, got {address!r}')
  try:
    n, i = int(values['num_processes']), int(values['process_id'])
  except ValueError:
    raise UserError('--num_processes and --process_id must be integers') from None
  if n < 1 or not 0 <= i < n:
    raise UserError(f'--process_id={i} is out of range for --num_processes={n} (0..{n - 1})')
  return address, n, i


def _wait_for_coordinator(spec, timeout: float) -> None:
  import socket
  import time

  address, n, i = spec
  host, _, port = address.rpartition(':')
  deadline = time.monotonic() + timeout
  while True:
    try:
      socket.create_connection((host, int(port)), timeout=1).close()
      return
    except OSError as e:
      if time.monotonic() >= deadline:
        raise UserError(
          f'multi-process start failed: could not reach the coordinator at {address} (process '
          f'{i} of {n}) within {timeout} s ({e.strerror or e}); start process 0 there first'
        ) from None
      time.sleep(0.2)


def initialize_processes(spec, auto_detect: bool = False, timeout: int = 300) -> None:
  """JAX's multi-process runtime for `spec` = (coordinator, num_processes, process_id), or with
  `auto_detect` the cluster's (SLURM, Open MPI, TPU, Kubernetes); nothing for one process."""
  if spec is None and not auto_detect:
    return
  import jax

  if spec is not None and spec[1] == 1:
    return
  # CPU processes talk through gloo; the setting touches only the CPU backend's collectives.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  kwargs = dict(initialization_timeout=timeout)
  if spec is not None:
    kwargs |= dict(coordinator_address=spec[0], num_processes=spec[1], process_id=spec[2])
    if spec[2] != 0:  # JAX aborts the process (no exception) when it cannot register in time
      _wait_for_coordinator(spec, timeout)
  try:
    jax.distributed.initialize(**kwargs)
  except Exception as e:  # noqa: BLE001 -- jax raises RuntimeError/XlaRuntimeError/ValueError
    where = f'process {spec[2]} of {spec[1]}, coordinator {spec[0]}' if spec else 'auto-detected'
    raise UserError(f'multi-process start failed ({where}): {_one_line(e)[:300]}') from None


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
  if len(argv) == 2 and argv[1] in ('-V', '--version'):
    print(_version())
    sys.exit(0)
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
