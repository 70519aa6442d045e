"""Prefect entry point of the train step: the `deepspeed` launcher as a subprocess.

Its output streams into the task run's log; the `step` events rank 0 sends (model/events.py)
move a progress artifact. A failure raises with the launcher's exit code and its last lines;
cancelling the flow run (SIGTERM, which Prefect turns into an exception here) stops every
rank, because `launch_training` kills the launcher's process group on any exception.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.states import State

from tasks.common.step import StepResult, run_step
from tasks.common.task import finished, step_task
from tasks.config import LmforgeConfig
from tasks.train.tracked_launch import train_model


def progress_reporter(
    logger: Any,
) -> tuple[Callable[[str], None], Callable[[dict[str, Any]], None]]:
    """(line handler, event handler): every launcher line goes to the task run's log; the
    ranks' `step` events (model/events.py) move the `train-progress` artifact, and `guard`
    events are logged as warnings."""
    artifact_id = create_progress_artifact(
        0.0, key="train-progress", description="training steps done, percent"
    )

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "step":
            update_progress_artifact(artifact_id, 100.0 * event["step"] / max(event["steps"], 1))
        elif event["event"] == "guard":
            logger.warning("training guard at step %s: %s", event["step"], event["reason"])

    return logger.info, on_event


@step_task("train", hours=72)
def train_step(
    config: LmforgeConfig, tokens: StepResult, upstream: list[StepResult], init_from: str = ""
) -> State:
    """Train the GPT on the token shards (from the weights of the exported model `init_from`,
    when given); its output folder holds checkpoints and the export."""
    logger = get_run_logger()

    def train(out: Path) -> dict[str, Any]:
        on_line, on_event = progress_reporter(logger)  # only when the step runs
        return train_model(config, tokens, upstream, out, on_line, init_from, on_event)

    settings = config.to_dict()
    identity = {
        "model": settings["model"],
        "train": settings["train"],
        "tracking_uri": config.mlflow_uri(),
    }
    if init_from:  # only then: the fingerprints of training from scratch stay as they were
        identity["init_from"] = init_from
    result = run_step(
        config.run.work_dir,
        "train",
        identity,
        [tokens],
        # the ranks run `model.train` under the deepspeed launcher (`--module model.train`,
        # model/launch.py): a subprocess, not an import, so it is named here
        [__name__, "model.train"],
        train,
    )
    if not result.skipped and "teardown_warning" in result.stats:
        logger.warning("the output is kept: %s", result.stats["teardown_warning"])
    return finished(result)
