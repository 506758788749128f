"""Run outputs: metrics.jsonl across a resume, and the summary results.json takes from it."""

import json

import pytest

from jaxssl import metrics


def _rows(workdir, rows):
  (workdir / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))


def test_eval_summary_gives_the_median_of_the_last_evaluations_and_the_best(tmp_path):
  # 25 evaluations among train-only rows: the median is over the last 20 (FixMatch's protocol),
  # the best over all of them, its step the first that reached it.
  errors = [0.5 - 0.01 * i for i in range(22)] + [0.4, 0.3, 0.31]
  rows = []
  for i, e in enumerate(errors):
    rows += [{'step': 10 * i + 5, 'loss/total': 1.0}, {'step': 10 * i + 10, 'eval/test/error': e}]
  _rows(tmp_path, rows)
  summary = metrics.eval_summary(str(tmp_path))
  last = sorted(errors[-20:])
  assert summary['test_error_median_last'] == pytest.approx((last[9] + last[10]) / 2)
  assert summary['median_of_last'] == 20
  assert summary['test_error_best'] == pytest.approx(0.29) and summary['best_step'] == 220
  _rows(tmp_path, rows[:6])  # three evaluations: the median of what there is
  summary = metrics.eval_summary(str(tmp_path))
  assert summary['test_error_median_last'] == 0.49 and summary['median_of_last'] == 3


def test_eval_summary_of_a_run_without_evaluations_is_empty(tmp_path):
  assert metrics.eval_summary(str(tmp_path)) == {}
  _rows(tmp_path, [{'step': 1, 'loss/total': 1.0}])
  assert metrics.eval_summary(str(tmp_path)) == {}


def test_jsonl_writer_drops_the_rows_a_killed_run_wrote_after_its_checkpoint(tmp_path):
  _rows(tmp_path, [{'step': s, 'eval/test/error': 0.1 * s} for s in (1, 2, 3)])
  writer = metrics.JsonlWriter(str(tmp_path), resume_step=2)
  writer.write_scalars(3, {'eval/test/error': 0.9})
  writer.close()
  assert metrics.eval_summary(str(tmp_path))['test_error_median_last'] == pytest.approx(0.2)
  steps = [json.loads(r)['step'] for r in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert steps == [1, 2, 3]
