"""The train step's work: open its MLflow run, write the job, run the `deepspeed` launcher,
close the run with the outcome (the step's Prefect entry point is task.py)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from model.files import sha256_file
from model.job import Job
from model.launch import launch_training
from tasks.common import tracking
from tasks.common.step import StepResult
from tasks.config import LmforgeConfig


def lineage_tags(upstream: list[StepResult], data_dir: Path) -> dict[str, str]:
    """MLflow tags tracing a model to its data: each step's fingerprint and the manifest hash."""
    tags = {f"lmforge.fingerprint.{r.step}": r.fingerprint for r in upstream}
    tags["lmforge.manifest_sha256"] = sha256_file(data_dir / "manifest.json")
    return tags


def curate_metrics(upstream: list[StepResult]) -> dict[str, float]:
    """The curate step's per-reason counts and funnel as `curate.*` MLflow metrics."""
    stats = next((r.stats for r in upstream if r.step == "curate"), {})
    metrics = {f"curate.{k}": float(v) for k, v in stats.items() if isinstance(v, int | float)}
    metrics.update({f"curate.funnel.{k}": float(v) for k, v in stats.get("funnel", {}).items()})
    return metrics


def train_model(
    config: LmforgeConfig,
    tokens: StepResult,
    upstream: list[StepResult],
    out_dir: Path,
    on_line: Callable[[str], None] | None = None,
    init_from: str = "",
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train on the shards of `tokens` into `out_dir` (starting from the exported model folder
    `init_from`, when given); returns the launcher's summary + run id."""
    data_dir = Path(tokens.path)
    manifest = json.loads((data_dir / "manifest.json").read_text())
    model_cfg = config.model
    if model_cfg.vocab_size == 0:
        model_cfg = dataclasses.replace(model_cfg, vocab_size=int(manifest["vocab_size"]))
    elif model_cfg.vocab_size < manifest["vocab_size"]:
        raise ValueError(
            f"model.vocab_size={model_cfg.vocab_size} is smaller than the tokenizer's "
            f"{manifest['vocab_size']}; set model.vocab_size=0 to take the tokenizer's size"
        )
    tags = lineage_tags(upstream, data_dir)
    run_id = tracking.start_run(config, run_name=f"train-{tokens.fingerprint[:8]}", tags=tags)
    tracking.log_metrics(config, run_id, curate_metrics(upstream))
    job = Job(
        model_cfg,
        config.train,
        data_dir,
        Path(out_dir),
        config.mlflow_uri(),
        run_id,
        Path(init_from) if init_from else None,
    )
    with tracking.finishing(config, run_id):
        summary = launch_training(job, out_dir, on_line, on_event)
        if "teardown_warning" in summary:  # the launcher failed after every rank had finished
            tracking.set_tags(
                config, run_id, {"lmforge.train.teardown_warning": summary["teardown_warning"]}
            )
    run = {"run_id": run_id, "experiment": config.tracking.experiment, "tags": tags}
    (out_dir / "mlflow_run.json").write_text(json.dumps(run, indent=2))
    return {**summary, "mlflow_run_id": run_id}
