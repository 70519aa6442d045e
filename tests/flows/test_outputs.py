"""Finding finished step outputs on disk: what the step flows and deployments start from."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flows.continuous import earlier_curated, iso_week
from flows.outputs import latest_output, lineage, step_output
from tasks.common.step import run_step
from tasks.config import load_config


def publish(work_dir, step, setting, inputs=()):
    return run_step(
        work_dir, step, {"n": setting}, list(inputs), ["flows"], lambda out: {"n": setting}
    )


def test_step_output_reads_back_a_finished_folder_and_refuses_an_unfinished_one(tmp_path):
    done = publish(tmp_path, "extract", 1)
    again = step_output(done.path)
    assert (again.step, again.fingerprint, again.path, again.stats["n"]) == (
        "extract",
        done.fingerprint,
        done.path,
        1,
    )
    (tmp_path / "extract" / "half").mkdir()
    with pytest.raises(FileNotFoundError, match="no _SUCCESS"):
        step_output(tmp_path / "extract" / "half")


def test_latest_output_is_the_newest_and_lineage_walks_upstream(tmp_path):
    with pytest.raises(FileNotFoundError, match="no finished 'curate' output"):
        latest_output(tmp_path, "curate")
    old, new = publish(tmp_path, "extract", 1), publish(tmp_path, "extract", 2)
    assert latest_output(tmp_path, "extract").path == new.path
    curated = publish(tmp_path, "curate", 3, [old])
    tokens = publish(tmp_path, "tokenize", 4, [curated])
    assert [r.path for r in lineage(tokens)] == [old.path, curated.path, tokens.path]


def test_incremental_curation_dedups_against_outputs_of_other_extracts(tmp_path):
    config = load_config(None, [f"run.work_dir={tmp_path}"])
    last_week, this_week = publish(tmp_path, "extract", 1), publish(tmp_path, "extract", 2)
    assert earlier_curated(config, this_week) is None
    before = publish(tmp_path, "curate", 1, [last_week])
    assert earlier_curated(config, this_week).path == before.path
    publish(tmp_path, "curate", 2, [this_week])  # this week's own output is not "earlier"
    assert earlier_curated(config, this_week).path == before.path


def test_iso_week_labels_the_weekly_crawl():
    assert iso_week(datetime(2026, 11, 29, tzinfo=UTC)) == "2026-W48"
    assert iso_week(datetime(2027, 1, 1, tzinfo=UTC)) == "2026-W53"
