"""experiments/report.py: one row per run, and mean ± sd over the seeds of a setting."""

import json

from experiments import report


def _run(root, name, seed, errors, stacked=True):
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
  (path / 'config.json').write_text(json.dumps(dict(stacked=stacked)))


def test_report_lists_runs_and_averages_over_seeds(tmp_path, capsys):
  _run(tmp_path, 'a', 0, 200)
  _run(tmp_path, 'b', 1, 400)
  _run(tmp_path, 'c', 0, 900, stacked=False)  # another setting, one seed: no summary row
  report.main([str(tmp_path)])
  out = capsys.readouterr().out
  assert '| vae_m2 | M1+M2 | 100 | 0 | 500 | 2.00 % (200) |' in out
  assert '| vae_m2 |  | 100 | 0 | 500 | 9.00 % (900) |' in out
  assert '| vae_m2 | M1+M2 | 100 | 500 | 2 | 3.00 % ± 1.41 |' in out
  assert out.count('% ± ') == 1
