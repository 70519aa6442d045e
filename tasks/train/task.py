"""Prefect entry point of the train step: the `deepspeed` launcher as a subprocess.

Its output streams into the task run's log; the `step N/M` lines rank 0 prints move a progress
artifact. A failure raises with the launcher's exit code and its last lines; cancelling the
flow run (SIGTERM, which Prefect turns into an exception here) stops every rank, because
`launch_training` kills the launcher's process group on any exception.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import State

from tasks.common.step import StepResult, run_step
from tasks.common.task import finished
from tasks.config import LmforgeConfig
from tasks.train.trainer import train_model

STEP_LINE = re.compile(r"^step (\d+)/(\d+)\b")


def progress_reporter(log: Callable[[str], None]) -> Callable[[str], None]:
    """A line handler that logs every launcher line and moves the `train-progress` artifact."""
    artifact_id = create_progress_artifact(
        0.0, key="train-progress", description="training steps done, percent"
    )

    def on_line(line: str) -> None:
        log(line)
        match = STEP_LINE.match(line)
        if match:
            done, total = int(match.group(1)), int(match.group(2))
            update_progress_artifact(artifact_id, 100.0 * done / max(total, 1))

    return on_line


@task(name="train", cache_policy=NO_CACHE, timeout_seconds=72 * 3600)
def train_step(
    config: LmforgeConfig, tokens: StepResult, upstream: list[StepResult], init_from: str = ""
) -> State:
    """Train the GPT on the token shards (from the weights of the exported model `init_from`,
    when given); its output folder holds checkpoints and the export."""
    logger = get_run_logger()
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
        lambda out: train_model(
            config, tokens, upstream, out, progress_reporter(logger.info), init_from
        ),
    )
    if not result.skipped and "teardown_warning" in result.stats:
        logger.warning("the output is kept: %s", result.stats["teardown_warning"])
    return finished(result)
