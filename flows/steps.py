"""One flow per step, for running a step on its own from the UI or the command line.

Each takes the config preset and overrides (as the pipeline does) and the folder of its input,
by default the most recently finished output of the step before it in the work directory.
A step whose output is already complete finishes at once, in a state named `Skipped`.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.champion import champion_uri
from flows.outputs import latest_output, lineage, step_output
from tasks.common.step import StepResult
from tasks.config import LmforgeConfig, load_config
from tasks.crawl.task import crawl_step
from tasks.curate.task import curate_step
from tasks.evaluate.task import evaluate_step
from tasks.extract.task import extract_step
from tasks.finetune.task import finetune_task
from tasks.register.task import register_step
from tasks.tokenize.task import tokenize_step
from tasks.train.base import start_from_base
from tasks.train.task import train_step

PRESET = "configs/demo.toml"


def input_of(config: LmforgeConfig, step: str, folder: str) -> StepResult:
    """The given output `folder`, or else the latest finished output of `step`."""
    return step_output(folder) if folder else latest_output(config.run.work_dir, step)


@flow(name="crawl", log_prints=True)
def crawl(
    config_path: str | None = PRESET, overrides: list[str] | None = None, snapshot: str = ""
) -> dict[str, str]:
    """Crawl the seeds and extract documents; `snapshot` (e.g. `2026-W48`) forces a new crawl."""
    config = load_config(config_path, overrides)
    crawled = crawl_step(config, snapshot).result()
    extracted = extract_step(config, crawled).result()
    return {"crawl": crawled.path, "extract": extracted.path}


@flow(name="curate", log_prints=True)
def curate(
    config_path: str | None = PRESET, overrides: list[str] | None = None, extracted: str = ""
) -> str:
    """Filter and deduplicate extracted documents (default: the latest extract output)."""
    config = load_config(config_path, overrides)
    return curate_step(config, input_of(config, "extract", extracted)).result().path


@flow(name="tokenize", log_prints=True)
def tokenize(
    config_path: str | None = PRESET, overrides: list[str] | None = None, curated: str = ""
) -> str:
    """Tokenize curated documents into shards (default: the latest curate output)."""
    config = load_config(config_path, overrides)
    return tokenize_step(config, input_of(config, "curate", curated)).result().path


@flow(name="train", log_prints=True)
def train(
    config_path: str | None = PRESET, overrides: list[str] | None = None, tokens: str = ""
) -> str:
    """Train on token shards (default: the latest tokenize output) with the deepspeed launcher."""
    config = load_config(config_path, overrides)
    base = start_from_base(config)  # train.init_from, "" = from scratch
    shards = input_of(config, "tokenize", tokens)
    return train_step(config, shards, lineage(shards), base).result().path


@flow(name="evaluate", log_prints=True)
def evaluate(
    config_path: str | None = PRESET, overrides: list[str] | None = None, trained: str = ""
) -> dict[str, object]:
    """Evaluate a trained model (default: the latest train output) on the shards it was
    trained on, register it, and publish the evaluation report."""
    config = load_config(config_path, overrides)
    model = input_of(config, "train", trained)
    shards = next(r for r in lineage(model) if r.step == "tokenize")
    evaluated = evaluate_step(config, model, shards).result()
    registered = register_step(config, model, evaluated).result()
    return {**registered.stats, "val_loss": evaluated.stats.get("val_loss")}


@flow(name="finetune", log_prints=True)
def finetune(
    config_path: str | None = PRESET,
    overrides: list[str] | None = None,
    data: str = "",
    base_model: str = "",
) -> dict[str, object]:
    """Fine-tune `base_model` (default: the champion) on the JSONL `data` ({prompt, response}
    or {messages} lines), evaluate before and after, register the result."""
    config = load_config(config_path, overrides)
    if not data:
        raise ValueError("finetune: give `data`, the path of a JSONL file of training examples")
    result = finetune_task(config, base_model or champion_uri(config), data)
    registered = result["registered"]
    promotion = registered.get("promotion") or {}
    report = (Path(result["path"]) / "before_after.md").read_text()
    report += (
        f"\n\nRegistered as **{registered['name']} version {registered['version']}**; "
        f"promotion: {promotion.get('decision', 'no gate ran')} ({promotion.get('reason', '')}).\n"
    )
    create_markdown_artifact(report, key="finetune-report", description="before/after metrics")
    return result
