"""What the steps' Prefect entry points show in the UI: the final state and the artifacts.

A step whose fingerprinted output was already complete finishes in a Completed state named
`Skipped`, so a resumed run shows at a glance which steps did work. Each data step publishes
a table artifact (its funnel: counts per stage and per drop reason) and a Markdown artifact
with its key numbers; the keys are stable, so every run adds a version of the same artifact.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, State

from tasks.common.step import StepResult


def step_task(name: str, hours: float, **options: Any) -> Any:
    """The Prefect task decorator of a step: its name, a time limit, and no Prefect result
    cache (the step's fingerprint decides whether it runs); `options` as `prefect.task`'s."""
    return task(name=name, cache_policy=NO_CACHE, timeout_seconds=int(hours * 3600), **options)


def finished(result: StepResult) -> State:
    """Completed (named `Skipped` when the output was already complete), carrying `result`."""
    if result.skipped:
        return Completed(
            name="Skipped", message=f"output already complete: {result.path}", data=result
        )
    return Completed(message=f"wrote {result.path}", data=result)


def funnel_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows `stage, documents, removed, reason`: the documents left after each stage, then
    one row per drop reason (`dropped_<reason>` counts in the step's stats)."""
    rows: list[dict[str, Any]] = []
    previous = None
    funnel = stats.get("funnel", {})
    for stage in stats.get("funnel_order") or list(funnel):  # stats.json sorts its keys
        left = funnel[stage]
        removed = "" if previous is None else previous - left
        rows.append({"stage": stage, "documents": left, "removed": removed, "reason": ""})
        previous = left
    for key, count in sorted(stats.items()):
        if key.startswith("dropped_"):
            reason = key.removeprefix("dropped_")
            rows.append({"stage": "dropped", "documents": count, "removed": "", "reason": reason})
    return rows


def markdown_numbers(title: str, result: StepResult, numbers: dict[str, Any]) -> str:
    """A Markdown summary: a heading, the step's state and output folder, a table of numbers."""
    state = "skipped (output already complete)" if result.skipped else "ran"
    lines = [
        f"# {title}",
        "",
        f"Step **{result.step}** {state}; fingerprint `{result.fingerprint}`.",
        "",
        f"Output: `{result.path}`",
        "",
        "| quantity | value |",
        "|---|---|",
    ]
    lines += [f"| {name} | {_shown(value)} |" for name, value in numbers.items()]
    return "\n".join(lines) + "\n"


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def published(
    result: StepResult, title: str, rows: list[dict[str, Any]], numbers: dict[str, Any]
) -> State:
    """Publish the step's artifacts (`publish_step`), then its final state (`finished`)."""
    publish_step(result, title, rows, numbers)
    return finished(result)


def publish_step(
    result: StepResult, title: str, rows: list[dict[str, Any]], numbers: dict[str, Any]
) -> None:
    """Create the step's table artifact (`<step>-funnel`) and Markdown (`<step>-summary`)."""
    create_table_artifact(
        rows, key=f"{result.step}-funnel", description=f"{title}: counts per stage and reason"
    )
    create_markdown_artifact(
        markdown_numbers(title, result, numbers),
        key=f"{result.step}-summary",
        description=f"{title}: key numbers",
    )
