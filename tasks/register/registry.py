"""Register step logic: log the trained model as an MLflow pyfunc and register a version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import model as model_package
from tasks.common.step import StepResult
from tasks.config import LmforgeConfig

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
MODEL_PACKAGE = Path(model_package.__file__).parent


def text_signature() -> Any:
    """Text in (`prompt` column), text out, with the generation settings as parameters."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "prompt")]),
        outputs=Schema([ColSpec("string")]),
        params=ParamSchema(
            [
                ParamSpec("max_new_tokens", "long", 64),
                ParamSpec("temperature", "double", 0.8),
                ParamSpec("top_k", "long", 40),
                ParamSpec("seed", "long", 0),
            ]
        ),
    )


def register_model(
    config: LmforgeConfig, trained: StepResult, evaluated: StepResult, out_dir: Path
) -> dict[str, Any]:
    """Log `<train>/model` to the training run as a pyfunc and register it; returns name/version."""
    import mlflow
    from mlflow import MlflowClient

    run = json.loads((Path(trained.path) / "mlflow_run.json").read_text())
    mlflow.set_tracking_uri(config.mlflow_uri())
    with mlflow.start_run(run_id=run["run_id"]):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_CODE),
            artifacts={"model_dir": str(Path(trained.path) / "model")},
            code_paths=[str(MODEL_PACKAGE)],
            signature=text_signature(),
            pip_requirements=["torch==2.13.0", "tokenizers", "safetensors", "numpy"],
        )
    client = MlflowClient(config.mlflow_uri())
    name = config.tracking.model_name
    version = mlflow.register_model(info.model_uri, name, tags=run["tags"])
    evaluation = evaluated.stats
    description = (
        f"Trained by run {run['run_id']}; validation loss {evaluation['val_loss']:.4f}, "
        f"perplexity {evaluation['perplexity']:.2f}."
    )
    client.update_model_version(name, version.version, description=description)
    registered = {
        "name": name,
        "version": int(version.version),
        "model_uri": f"models:/{name}/{version.version}",
        "run_id": run["run_id"],
    }
    (out_dir / "registered.json").write_text(json.dumps(registered, indent=2))
    return registered
