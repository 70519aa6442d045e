"""Fine-tune a registered model on a domain JSONL and register the result as its own model.

The base (`models:/<name>@champion`, a version, or a model folder) is checked against the data
first: every line parsed (errors name the line), the tokenizer must fit the model and carry the
chat markers, every prompt must leave room in the context window. Then it is evaluated on the
held-out examples, fine-tuned by the same `deepspeed` training script (`init_from` + `sft`
job keys, loss on response tokens only), evaluated again, and registered as
`<base name>-<domain>` with tags naming the base version, the data's sha256 and the method.
With `finetune.method = "lora"` only low-rank adapters train (model/lora.py); the version holds
the merged model and keeps the adapter folder as its own artifact. Nothing is registered when
any step fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from model.checkpoint import TOKENIZER, load_model_config
from model.evaluate import EvalSets
from model.files import sha256_file
from model.job import Job
from model.launch import launch_training
from model.lora import LoraSettings
from model.sft import SftDataset
from tasks.common import tracking
from tasks.common.step import run_step
from tasks.config import LmforgeConfig, RegisterConfig
from tasks.evaluate.report import run_evaluation, write_report
from tasks.finetune.report import before_after_markdown, finetune_card, training_markdown
from tasks.register.registry import register_version
from tasks.register.resolve import ResolvedModel, resolve_model


def split_examples(data: Path, val_data: str, every: int, out_dir: Path) -> tuple[Path, Path]:
    """(train, val) JSONL files: `val_data` as given, else every `every`-th line held out."""
    lines = data.read_text(encoding="utf-8").splitlines(keepends=True)
    if val_data:
        return data, Path(val_data)
    if every < 2 or len(lines) < every:
        raise ValueError(
            f"{data} has {len(lines)} lines; holding out every finetune.val_every={every}-th "
            "needs val_every >= 2 and at least that many lines (or give finetune.val_data)"
        )
    train, val = out_dir / "train.jsonl", out_dir / "val.jsonl"
    train.write_text("".join(line for i, line in enumerate(lines, 1) if i % every))
    val.write_text("".join(line for i, line in enumerate(lines, 1) if i % every == 0))
    return train, val


def check_inputs(base: ResolvedModel, files: list[Path]) -> None:
    """Refuse a tokenizer that does not fit the model, bad JSONL lines, over-long prompts."""
    cfg = load_model_config(base.model_dir)
    for path in files:
        dataset = SftDataset(path, base.model_dir / TOKENIZER, cfg.block_size)
        if dataset.vocab_size > cfg.vocab_size:
            raise ValueError(
                f"{base.model_dir}/{TOKENIZER} has a {dataset.vocab_size}-token vocabulary, the "
                f"model only {cfg.vocab_size}: the tokenizer does not belong to this model"
            )


def training_job(
    config: LmforgeConfig, base: ResolvedModel, train: Path, val: Path, out: Path
) -> Job:
    """The fine-tuning run's job: the base's shape, `finetune` over `train` settings (a
    ValueError, before anything runs, for a LoRA job the ranks cannot run)."""
    ft = config.finetune
    settings = dataclasses.replace(
        config.train,
        steps=ft.steps,
        lr=ft.lr,
        min_lr=ft.min_lr,
        warmup_steps=ft.warmup_steps,
        micro_batch=ft.micro_batch,
        eval_every=ft.eval_every,
    )
    lora = None
    if ft.method == "lora":
        lora = LoraSettings(ft.lora_rank, ft.lora_alpha, ft.lora_dropout, list(ft.lora_targets))
    return Job(
        load_model_config(base.model_dir),
        settings,
        None,
        out,
        init_from=base.model_dir,
        sft={"train": str(train), "val": str(val), "tokenizer": str(base.model_dir / TOKENIZER)},
        lora=lora,
    )


def finetune(
    config: LmforgeConfig,
    base_model: str,
    data: str,
    on_line: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune `base_model` on the JSONL `data`; returns before/after metrics and the version."""
    data_path = Path(data)
    if not data_path.is_file():
        raise FileNotFoundError(f"fine-tuning data {data} does not exist")
    base = resolve_model(config, base_model)
    digest = sha256_file(data_path)
    identity = {
        "base": base.label,
        "base_weights": sha256_file(base.model_dir / "model.safetensors"),
        "data_sha256": digest,
        "finetune": config.to_dict()["finetune"],
        "train": config.to_dict()["train"],
        "evaluate": config.to_dict()["evaluate"],
        "tracking_uri": config.mlflow_uri(),
    }
    result = run_step(
        config.run.work_dir,
        "finetune",
        identity,
        [],
        # launch_training runs `model.train` as a subprocess module; register_version logs
        # pyfunc_model.py by path and ships the whole `model` folder with the model
        [__name__, "model.train", "tasks/register/pyfunc_model.py", "model"],
        lambda out: finetune_into(config, base, data_path, digest, out, on_line),
    )
    return {**result.stats, "path": result.path, "skipped": result.skipped}


def finetune_into(
    config: LmforgeConfig,
    base: ResolvedModel,
    data: Path,
    digest: str,
    out: Path,
    on_line: Callable[[str], None] | None,
) -> dict[str, Any]:
    """The work of `finetune` inside its step folder `out`."""
    from mlflow import MlflowClient

    ft = config.finetune
    check_inputs(base, [data, *([Path(ft.val_data)] if ft.val_data else [])])
    train, val = split_examples(data, ft.val_data, ft.val_every, out)
    job = training_job(config, base, train, val, out)
    sets = EvalSets(sft=val, choices=Path(ft.choices) if ft.choices else None)
    before = run_evaluation(config, base.model_dir, None, sets)
    name = f"{base.name or config.tracking.model_name}-{ft.domain}"
    tags = {
        "lmforge.base_model": base.label,
        "lmforge.base_model.name": str(base.name),
        "lmforge.base_model.version": str(base.version),
        "lmforge.base_model.run_id": str(base.run_id),
        "lmforge.finetune.data": str(data.resolve()),
        "lmforge.finetune.data_sha256": digest,
        "lmforge.finetune.method": ft.method,
    }
    run_id = tracking.start_run(config, run_name=f"finetune-{ft.domain}", tags=tags)
    with tracking.finishing(config, run_id):
        tracking.log_metrics(
            config, run_id, {f"before_{k}": v for k, v in before["metrics"].items()}
        )
        job.tracking_uri, job.run_id = config.mlflow_uri(), run_id
        summary = launch_training(job, out, on_line)
        after = run_evaluation(config, out / "model", None, sets)
        tracking.log_metrics(config, run_id, {f"after_{k}": v for k, v in after["metrics"].items()})
        files = write_report(out / "evaluation", f"{name} (fine-tuned)", after)
        report = before_after_markdown(before, after) + "\n" + training_markdown(summary)
        (out / "before_after.md").write_text(report)
        gate = RegisterConfig(ft.promote_metrics, ft.promote_margin)
        training = {"job": job, "summary": summary}

        def card(decision: dict[str, Any]) -> str:
            return finetune_card(name, tags, training, before, after, decision)

        client = MlflowClient(config.mlflow_uri())
        for path in [*files, out / "before_after.md"]:
            client.log_artifact(run_id, str(path), artifact_path="evaluation")
        # LoRA: the version holds the merged model and keeps the adapter as its own artifact
        adapter = {"adapter": out / "adapter"} if job.lora is not None else {}
        registered = register_version(
            config,
            name,
            out / "model",
            run_id,
            tags,
            after["metrics"],
            card,
            out,
            gate,
            extra_artifacts=adapter,
            chat=True,
        )
    return {
        "before": before["metrics"],
        "after": after["metrics"],
        "samples": after["samples"],
        "train_summary": summary,
        "method": ft.method,
        "registered": registered,
        "data_sha256": digest,
        "mlflow_run_id": run_id,
    }
