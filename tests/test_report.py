"""experiments/report.py: one row per run, and mean ± sd over the seeds of a setting."""

import json

from experiments import report


def _run(root, name, seed, errors, stacked=True, **config):
  path = root / name
  path.mkdir()
  result = dict(
    method='vae_m2',
    labels=100,
    seed=seed,
    steps=500,
    test_error=errors / 10_000,
    test_errors=errors,
    wall_seconds=60.0,
    device='cpu',
    device_count=1,
  )
  (path / 'results.json').write_text(json.dumps(result))
  (path / 'config.json').write_text(json.dumps(dict(stacked=stacked, **config)))


def test_report_lists_runs_and_averages_over_seeds(tmp_path, capsys):
  _run(tmp_path, 'a', 0, 200)
  _run(tmp_path, 'b', 1, 400)
  _run(tmp_path, 'c', 0, 900, stacked=False)  # another setting, one seed: no summary row
  # An M1-only run (no classifier) and M2 on its M1 are settings of their own.
  _run(tmp_path, 'm1', 0, 9000, m1_fraction=1.0)
  _run(tmp_path, 'r', 1, 300, m1_fraction=0.0, init_from='m1')
  report.main([str(tmp_path)])
  out = capsys.readouterr().out
  assert '| vae_m2 | M1+M2 | 100 | 0 | 500 | 2.00 % (200) |' in out
  assert '| vae_m2 |  | 100 | 0 | 500 | 9.00 % (900) |' in out
  assert '| vae_m2 | M1+M2 | 100 | 500 | 2 | 3.00 % ± 1.41 |' in out
  assert (
    '| vae_m2 | M1 only | 100 | 0 |' in out and '| vae_m2 | M1+M2 (M1 reused) | 100 | 1 |' in out
  )
  assert out.count('% ± ') == 1


def test_report_keeps_runs_on_one_fixed_split_apart(tmp_path, capsys):
  _run(tmp_path, 'a', 0, 200, stacked=False)
  _run(tmp_path, 'b', 1, 400, stacked=False)
  _run(tmp_path, 'c', 0, 100, stacked=False, split_recipe='improved_gan', split_seed=1)
  _run(tmp_path, 'd', 1, 300, stacked=False, split_recipe='improved_gan', split_seed=1)
  report.main([str(tmp_path)])
  out = capsys.readouterr().out
  assert '| vae_m2 |  | 100 | 500 | 2 | 3.00 % ± 1.41 |' in out
  assert "| vae_m2 | the authors' split 1 | 100 | 500 | 2 | 2.00 % ± 1.41 |" in out


def test_curves_continue_the_wall_clock_of_a_resumed_run_and_draw_a_png(tmp_path):
  from experiments import curves

  run = tmp_path / 'gan_s0'
  run.mkdir()
  rows = [  # clu's uptime restarts at 0 when the resumed process starts
    dict(step=100, uptime=10.0, **{'eval/test/error': 0.5}),
    dict(step=200, uptime=20.0),
    dict(step=300, uptime=5.0, **{'eval/test/error': 0.3}),
  ]
  (run / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
  assert curves.read(run, 'eval/test/error') == [(100, 10.0, 0.5), (300, 25.0, 0.3)]
  assert curves.group_of(run, r'(_s|/seed|_seed)\d+$') == str(tmp_path / 'gan')
  out = tmp_path / 'c.png'
  curves.main([str(tmp_path / 'gan_s*'), '--x=wall', f'--out={out}'])
  assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
