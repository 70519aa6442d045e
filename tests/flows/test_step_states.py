"""What the step entry points hand the Prefect UI: final states, funnel rows, retry choice."""

from __future__ import annotations

from prefect.states import Failed

from tasks.common.step import StepResult
from tasks.common.task import finished, funnel_rows, markdown_numbers
from tasks.crawl.task import network_failure

STATS = {
    "input": 10,
    "kept": 6,
    "dropped_too_short": 3,
    "dropped_near_duplicate": 1,
    "funnel": {"input": 10, "after_length": 7, "after_near_dedup": 6, "kept": 6},
}


def test_a_skipped_step_finishes_completed_but_named_skipped():
    ran = finished(StepResult("curate", "ab12", "/w/curate/ab12", STATS))
    skipped = finished(StepResult("curate", "ab12", "/w/curate/ab12", STATS, skipped=True))
    assert (ran.type.value, ran.name) == ("COMPLETED", "Completed")
    assert (skipped.type.value, skipped.name) == ("COMPLETED", "Skipped")
    assert "already complete" in skipped.message


def test_funnel_rows_account_for_every_document():
    rows = funnel_rows(STATS)
    assert [(r["stage"], r["documents"], r["removed"]) for r in rows[:4]] == [
        ("input", 10, ""),
        ("after_length", 7, 3),
        ("after_near_dedup", 6, 1),
        ("kept", 6, 0),
    ]
    reasons = {r["reason"]: r["documents"] for r in rows if r["stage"] == "dropped"}
    assert reasons == {"too_short": 3, "near_duplicate": 1}
    assert sum(reasons.values()) == STATS["input"] - STATS["kept"]


def test_markdown_summary_names_the_state_and_formats_numbers():
    text = markdown_numbers(
        "Curate", StepResult("curate", "ab12", "/w/c", STATS, skipped=True), {"kept": 12345}
    )
    assert "skipped (output already complete)" in text and "| kept | 12,345 |" in text


def test_only_network_errors_retry_the_crawl():
    assert network_failure(None, None, Failed(data=ConnectionResetError("peer reset")))
    assert network_failure(None, None, Failed(data=TimeoutError("read timed out")))
    assert not network_failure(None, None, Failed(data=ValueError("crawl.max_pages must be")))
    assert not network_failure(None, None, Failed(data=FileNotFoundError("books_dir")))


def test_funnels_keep_pipeline_order_after_a_round_trip_through_stats_json() -> None:
    import json

    from tasks.register.model_card import data_section

    stats = {"input": 10, "kept": 6, "dropped_length": 3, "dropped_near_dup": 1}
    stats["funnel"] = {"input": 10, "length": 10, "links": 7, "near_dedup": 6, "kept": 6}
    stats["funnel_order"] = list(stats["funnel"])
    stored = json.loads(json.dumps(stats, sort_keys=True))  # as stats.json holds it
    order = ["input", "length", "links", "near_dedup", "kept"]
    assert [r["stage"] for r in funnel_rows(stored) if r["stage"] != "dropped"] == order
    card = "\n".join(data_section({"curate": {"fingerprint": "f", "path": "p", "stats": stored}}))
    assert [card.index(f"| {stage} |") for stage in order] == sorted(
        card.index(f"| {stage} |") for stage in order
    )
