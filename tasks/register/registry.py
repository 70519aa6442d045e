"""Register step logic: log a model as an MLflow pyfunc, register it, run the promotion gate.

Every version carries the exported folder (served by pyfunc_model.py) and the same model as a
Hugging Face Llama folder (artifact `hf`). Every new version gets the alias `candidate` and its
evaluation as tags (promotion.eval_tags: every number in one JSON tag, the gate's metrics one by
one) and as a table in its description;
`champion` moves to it only when the gate (promotion.py) says so, and the decision with
both sets of numbers goes to the version's description and tags. The model card
(model_card.md) is logged with the model, so it travels with every download of the version,
as do any extra artifacts the caller names (a fine-tuned version's LoRA adapter folder).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import model as model_package
from model.guard import HEALTH_TAG
from model.hf import export_hf
from tasks.common.step import StepResult
from tasks.config import LmforgeConfig, RegisterConfig
from tasks.curate.eval_sets import evaluation_sets
from tasks.register.model_card import model_card, upstream_outputs
from tasks.register.promotion import Decision, decide, eval_tags, unchecked_sets

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
MODEL_PACKAGE = Path(model_package.__file__).parent
CANDIDATE, CHAMPION = "candidate", "champion"
HF_ARTIFACT = "hf"  # the version's Hugging Face folder (model/hf.py)


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
                ParamSpec("top_p", "double", 0.0),  # 0 = off
                ParamSpec("seed", "long", 0),
            ]
        ),
    )


def champion_of(config: LmforgeConfig, name: str) -> tuple[dict[str, str] | None, int | None]:
    """(tags, version) of the current champion of `name`, or (None, None) if there is none."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        found = MlflowClient(config.mlflow_uri()).get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None, None
    return dict(found.tags), int(found.version)


def register_version(
    config: LmforgeConfig,
    name: str,
    model_dir: Path,
    run_id: str,
    tags: dict[str, str],
    metrics: dict[str, float],
    card: Callable[[dict[str, Any]], str],
    out_dir: Path,
    gate: RegisterConfig | None = None,
    decision: Decision | None = None,
    chat: bool = False,
    extra_artifacts: dict[str, Path] | None = None,
    champion_measured: dict[str, float] | None = None,
    unchecked: list[str] | None = None,
) -> dict[str, Any]:
    """Gate (`gate`, else `register` settings; or the given `decision`), card, log and register
    `model_dir` as a version of `name`; returns what happened. The version's artifacts hold
    the exported folder (`model_dir`, what the pyfunc serves), the same model as a Hugging Face
    Llama folder (`hf`; with the chat template when `chat`), the model card and
    `extra_artifacts` (name -> file or folder, each under its own name). `champion_measured`:
    the champion's numbers measured now on the candidate's data, for a champion that has none
    recorded (an imported version). `unchecked`: the evaluation sets this version is scored on
    that its training data was not checked against (the gate refuses it)."""
    import mlflow
    from mlflow import MlflowClient

    taken = {"model_dir", "model_card", HF_ARTIFACT} & set(extra_artifacts or {})
    if taken:
        raise ValueError(f"extra artifact name(s) {sorted(taken)} are the model's own; rename them")
    if decision is None:
        champion_tags, champion_version = champion_of(config, name)
        if champion_tags is not None and champion_measured:
            settings = gate or config.register
            champion_tags = {
                **champion_tags,
                **eval_tags(champion_measured, settings.promote_metrics),
            }
        health = MlflowClient(config.mlflow_uri()).get_run(run_id).data.tags.get(HEALTH_TAG)
        decision = decide(
            gate or config.register, metrics, champion_tags, champion_version, health, unchecked
        )
        if champion_measured and not unchecked:
            decision.reason = (
                f"champion version {champion_version} has no recorded evaluation (imported); "
                f"measured now on this version's validation data: {decision.reason}"
            )
    (out_dir / "model_card.md").write_text(card(decision.to_dict()))
    hf_dir = out_dir / HF_ARTIFACT
    shutil.rmtree(hf_dir, ignore_errors=True)  # a retried registration writes it again
    export_hf(model_dir, hf_dir, chat=chat)
    mlflow.set_tracking_uri(config.mlflow_uri())
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_CODE),
            artifacts={
                "model_dir": str(model_dir),
                HF_ARTIFACT: str(hf_dir),
                "model_card": str(out_dir / "model_card.md"),
                **{key: str(path) for key, path in (extra_artifacts or {}).items()},
            },
            code_paths=[str(MODEL_PACKAGE)],
            signature=text_signature(),
            pip_requirements=["torch==2.13.0", "tokenizers", "safetensors", "numpy"],
        )
    numbers = eval_tags(metrics, (gate or config.register).promote_metrics)
    version = mlflow.register_model(
        info.model_uri, name, tags={**tags, **numbers, **decision.tags()}
    )
    number = int(version.version)
    client = MlflowClient(config.mlflow_uri())
    verdict = decision.to_dict()
    description = f"Run {run_id}. {verdict['decision']}: {verdict['reason']}\n\n"
    description += "| metric | value |\n|---|---|\n"  # every number where a reader looks
    description += "".join(f"| {k} | {float(v):.6g} |\n" for k, v in sorted(metrics.items()))
    client.update_model_version(name, str(number), description=description)
    client.set_registered_model_alias(name, CANDIDATE, str(number))
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION, str(number))
    registered = {
        "name": name,
        "version": number,
        "model_uri": f"models:/{name}/{number}",
        "run_id": run_id,
        "aliases": [CANDIDATE, CHAMPION] if decision.promote else [CANDIDATE],
        "promotion": verdict,
    }
    (out_dir / "registered.json").write_text(json.dumps(registered, indent=2))
    return registered


def measure_unevaluated_champion(
    config: LmforgeConfig, name: str, data_dir: Path
) -> dict[str, float] | None:
    """The champion's evaluation on the candidate's validation data (`data_dir`, same sets),
    when the champion has no recorded numbers for the gate (an imported version, which was never
    evaluated here); None when it has them or there is no champion."""
    from tasks.evaluate.report import eval_sets, run_evaluation
    from tasks.register.promotion import recorded_metrics
    from tasks.register.resolve import resolve_model

    tags, version = champion_of(config, name)
    if tags is None or all(m in recorded_metrics(tags) for m in config.register.promote_metrics):
        return None
    champion = resolve_model(config, f"models:/{name}/{version}")
    return run_evaluation(config, champion.model_dir, data_dir, eval_sets(config.evaluate))[
        "metrics"
    ]


def scored_sets(config: LmforgeConfig) -> list[dict[str, str]]:
    """(name, path, sha256) of each evaluation set the evaluate step scores a model on."""
    return [
        {"name": s.name, "path": s.path, "sha256": s.sha256()}
        for s in evaluation_sets(config)
        if s.name.startswith("evaluate.")
    ]


def register_model(
    config: LmforgeConfig, trained: StepResult, evaluated: StepResult, out_dir: Path
) -> dict[str, Any]:
    """Register the model the train step exported, with its evaluation and model card; a
    champion without recorded numbers (imported) is evaluated on the same validation data
    first, so the gate compares like with like; one whose curate output did not check the
    evaluation sets it is scored on is refused."""
    run = json.loads((Path(trained.path) / "mlflow_run.json").read_text())
    steps = upstream_outputs(Path(trained.path))
    train = steps["train"]
    training = {"settings": train["config"], "summary": train["stats"]}
    evaluation = evaluated.stats
    name = config.tracking.model_name
    unchecked = unchecked_sets(scored_sets(config), steps.get("curate", {}).get("stats", {}))
    measured = (  # a refused candidate needs no comparison
        None
        if unchecked
        else measure_unevaluated_champion(config, name, Path(steps["tokenize"]["path"]))
    )

    def card(decision: dict[str, Any]) -> str:
        title = f"{name} (run {run['run_id']})"
        return model_card(title, run["tags"], steps, training, evaluation, decision)

    return register_version(
        config,
        name,
        Path(trained.path) / "model",
        run["run_id"],
        run["tags"],
        evaluation["metrics"],
        card,
        out_dir,
        champion_measured=measured,
        unchecked=unchecked,
    )
