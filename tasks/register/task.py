"""Prefect entry point of the register step (MLflow Model Registry), and the evaluation report
the UI shows after it: metrics, links to the MLflow run and model version, promotion decision."""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact
from prefect.states import State

from tasks.common.step import StepResult, run_step
from tasks.common.task import finished, step_task
from tasks.config import LmforgeConfig
from tasks.register.registry import register_model


def mlflow_ui_url(config: LmforgeConfig) -> str:
    """Where people open the MLflow UI: `tracking.ui_url`, else an http(s) tracking server,
    else `make ui`'s address."""
    if config.tracking.ui_url:
        return config.tracking.ui_url.rstrip("/")
    uri = config.mlflow_uri()
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"


def evaluation_report(
    config: LmforgeConfig, evaluated: StepResult, registered: StepResult, experiment_id: str
) -> str:
    """The Markdown report: metrics, samples, links to the MLflow run and model version, and
    the promotion decision (when the register step made one)."""
    ui, version = mlflow_ui_url(config), registered.stats
    stats = evaluated.stats
    metrics = stats.get("metrics") or {k: v for k, v in stats.items() if k != "seconds"}
    run_id, name = version["run_id"], version["name"]
    promotion = version.get("promotion") or {}
    lines = [
        f"# Evaluation of {name} version {version['version']}",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [
        f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |"
        for key, value in sorted(metrics.items())
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    lines += [
        "",
        f"- MLflow run: [{run_id}]({ui}/#/experiments/{experiment_id}/runs/{run_id})",
        f"- Registered model: [{name} version {version['version']}]"
        f"({ui}/#/models/{name}/versions/{version['version']})",
        f"- Promotion: {promotion.get('decision', 'no promotion gate ran')}"
        + (f" ({promotion['reason']})" if promotion.get("reason") else ""),
        "",
        "## Samples",
        "",
    ]
    for sample in stats.get("samples", []):
        lines += [f"**{sample['prompt']}**", "", "```", sample["completion"], "```", ""]
    return "\n".join(lines)


@step_task("register", hours=1)
def register_step(config: LmforgeConfig, trained: StepResult, evaluated: StepResult) -> State:
    """Register the evaluated model as a new version of `tracking.model_name`."""
    result = run_step(
        config.run.work_dir,
        "register",
        {
            "model_name": config.tracking.model_name,
            "tracking_uri": config.mlflow_uri(),
            "register": config.to_dict()["register"],
        },
        [trained, evaluated],
        # MLflow logs pyfunc_model.py by path (models-from-code) and ships the whole `model`
        # folder as code_paths (registry.py): the registered model holds all of it
        [__name__, "tasks/register/pyfunc_model.py", "model"],
        lambda out: register_model(config, trained, evaluated, out),
    )
    from mlflow import MlflowClient

    run = MlflowClient(config.mlflow_uri()).get_run(result.stats["run_id"])
    report = evaluation_report(config, evaluated, result, run.info.experiment_id)
    create_markdown_artifact(report, key="evaluation-report", description="metrics and links")
    return finished(result)
