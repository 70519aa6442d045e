"""Prefect entry point of the evaluate step."""

from __future__ import annotations

from prefect.states import State

from tasks.common.step import StepResult, run_step
from tasks.common.task import finished, step_task
from tasks.config import LmforgeConfig
from tasks.evaluate.report import evaluate_trained


@step_task("evaluate", hours=6)
def evaluate_step(config: LmforgeConfig, trained: StepResult, tokens: StepResult) -> State:
    """Validation loss, perplexity and sample generations of the trained model."""
    result = run_step(
        config.run.work_dir,
        "evaluate",
        {"evaluate": config.to_dict()["evaluate"]},
        [trained, tokens],
        [__name__],
        lambda out: evaluate_trained(config, trained, tokens, out),
    )
    return finished(result)
