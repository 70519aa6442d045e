"""Find an exported model folder from what a person types: a registry URI or a local folder.

`models:/<name>@<alias>` and `models:/<name>/<version>` are looked up in the Model Registry and
their exported folder (the pyfunc's `model_dir` artifact) is downloaded once into
`<work_dir>/models/<name>/<version>/`. A local folder is an exported model (`config.json` +
`model.safetensors`) or a train step output holding one in `model/`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from model.checkpoint import CONFIG, WEIGHTS
from tasks.config import LmforgeConfig

REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ResolvedModel:
    """An exported model folder and, where known, its registry version and MLflow run."""

    model_dir: Path
    run_id: str | None = None
    name: str | None = None
    version: int | None = None

    @property
    def label(self) -> str:
        return f"{self.name} version {self.version}" if self.name else str(self.model_dir)


def _local(path: Path) -> ResolvedModel:
    if (path / CONFIG).is_file() and (path / WEIGHTS).is_file():
        run_file = path.parent / "mlflow_run.json"
    elif (path / "model" / CONFIG).is_file():
        path, run_file = path / "model", path / "mlflow_run.json"
    else:
        raise ValueError(
            f"{path} is neither an exported model folder ({CONFIG} + {WEIGHTS}) nor a train "
            "step output with a model/ folder"
        )
    run_id = json.loads(run_file.read_text())["run_id"] if run_file.is_file() else None
    return ResolvedModel(path, run_id)


def registry_version(config: LmforgeConfig, uri: str):
    """The MLflow ModelVersion a `models:/` URI names, or a ValueError saying what exists."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    match = REGISTRY_URI.match(uri)
    if match is None:
        raise ValueError(
            f"unknown model URI {uri!r}: use models:/<name>@<alias>, models:/<name>/<version> "
            "or the path of an exported model folder"
        )
    client = MlflowClient(config.mlflow_uri())
    name, alias, version = match["name"], match["alias"], match["version"]
    try:
        client.get_registered_model(name)
    except MlflowException as err:
        known = sorted(m.name for m in client.search_registered_models())
        raise ValueError(
            f"no registered model {name!r} in {config.mlflow_uri()} (registered: {known or 'none'})"
        ) from err
    try:
        if alias:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, version)
    except MlflowException as err:
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
        wanted = f"alias {alias!r}" if alias else f"version {version}"
        raise ValueError(f"{uri}: model {name!r} has no {wanted} (versions: {versions})") from err


def resolve_model(config: LmforgeConfig, uri: str) -> ResolvedModel:
    """The exported model folder behind `uri` (downloaded from the registry when needed)."""
    if not uri.startswith("models:/"):
        path = Path(uri)
        if not path.exists():
            raise ValueError(
                f"model {uri!r} is neither a models:/ URI nor an existing folder: use "
                "models:/<name>@champion, models:/<name>/<version> or an exported model folder"
            )
        return _local(path)
    import mlflow
    from mlflow.models import Model

    found = registry_version(config, uri)
    cache = Path(config.run.work_dir).resolve() / "models" / found.name / str(found.version)
    if not (cache / CONFIG).is_file():
        tmp = cache.with_name(f".tmp-{uuid.uuid4().hex[:8]}")
        mlflow.set_tracking_uri(config.mlflow_uri())
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{found.name}/{found.version}", dst_path=str(tmp)
        )
        flavor = Model.load(str(tmp / "MLmodel")).flavors["python_function"]
        if cache.exists():
            shutil.rmtree(cache)
        os.rename(tmp / flavor["artifacts"]["model_dir"]["path"], cache)
        shutil.rmtree(tmp)
    return ResolvedModel(cache, found.run_id, found.name, int(found.version))


def generate_from(
    config: LmforgeConfig,
    uri: str,
    prompts: list[str],
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    seed: int,
    chat: bool = False,
) -> list[str]:
    """Completions of `prompts` by the model behind `uri` (seeded: same seed, same text); with
    `chat`, a fine-tuned model's answers to them as user messages."""
    from tokenizers import Tokenizer

    from model.checkpoint import TOKENIZER, load_model
    from model.generate import answer, complete

    model_dir = resolve_model(config, uri).model_dir
    model, _ = load_model(model_dir)
    tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER))
    generate = answer if chat else complete
    return [
        generate(model, tokenizer, p, max_new_tokens, temperature, top_k or None, seed)
        for p in prompts
    ]
