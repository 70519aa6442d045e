"""Prefect entry point of the curate step."""

from __future__ import annotations

from prefect.states import State

from tasks.common.spark import spark_session
from tasks.common.step import StepResult, run_step
from tasks.common.task import funnel_rows, published, step_task
from tasks.config import LmforgeConfig
from tasks.curate.curate import curate_documents
from tasks.curate.eval_sets import curate_identity
from tasks.curate.quality_classifier import reference_sha256


def _reference_identity(config: LmforgeConfig) -> dict[str, str]:
    """The quality classifier's reference set by content: editing its files re-runs curate."""
    quality = config.curate.quality
    return (
        {"quality_reference_sha256": reference_sha256(quality.reference)} if quality.enabled else {}
    )


@step_task("curate", hours=12)
def curate_step(config: LmforgeConfig, extracted: StepResult) -> State:
    """Filter and deduplicate the extracted documents into `<work_dir>/curate/`."""
    spark = spark_session(config.spark)
    identity, sets = curate_identity(config)
    result = run_step(
        config.run.work_dir,
        "curate",
        {**identity, **_reference_identity(config)},
        [extracted],
        # the default word lists are read from files, not imported
        [__name__, "tasks/curate/wordlists/badwords_en_c4.txt"],
        lambda out: curate_documents(spark, f"{extracted.path}/docs", config.curate, out, sets),
    )
    stats = result.stats
    n_input, kept = stats.get("input", 0), stats.get("kept", 0)
    funnel = stats.get("funnel", {})
    stages = stats.get("funnel_order") or list(funnel)  # a reused output's stats sort their keys
    left = [funnel[stage] for stage in stages]
    # documents left before the first dedup stage: what the filters let through
    first = next((s for s in ("after_paragraph_dedup", "after_exact_dedup") if s in funnel), "")
    filtered = left[stages.index(first) - 1] if first else kept
    deduplicated = funnel.get("after_near_dedup", kept)
    numbers = {
        "documents in": n_input,
        "removed by filters": n_input - filtered,
        "removed as duplicates": filtered - deduplicated,
        "paragraphs removed as boilerplate": stats.get("paragraphs_removed", 0),
        "removed as contaminated": deduplicated - funnel.get("after_decontaminate", deduplicated),
        "evaluation sets checked": len(stats.get("decontamination", {}).get("sets", [])),
        "removed as low quality": stats.get("dropped_low_quality", 0),
        "documents kept": kept,
        "kept share": kept / n_input if n_input else 0.0,
        "deduplicated against": config.curate.previous_output or "(this input only)",
        "seconds": stats.get("seconds", 0.0),
    }
    return published(result, "Curate", funnel_rows(stats), numbers)
