"""The flows the scheduled deployments run: collect new data weekly, keep training nightly.

`collect-and-curate` crawls afresh once per ISO week (the week is the crawl's snapshot label,
so a re-run within the week resumes instead of crawling again), extracts, curates against the
band index of every earlier week (each curate output carries the index of all before it), and
tokenizes with the champion's tokenizer when there is a champion, so the nightly run can use
the shards. `continue-pretraining` tokenizes the newest curated documents with the champion's
tokenizer, trains on them starting from the champion's weights, evaluates and registers; the
register step's promotion gate moves `champion` only when the new version is better.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger

from flows.champion import champion_model
from flows.outputs import finished_outputs, latest_output, lineage, step_output
from flows.steps import PRESET
from model.checkpoint import load_model_config
from tasks.common.step import StepResult
from tasks.config import LmforgeConfig, load_config
from tasks.crawl.task import crawl_step
from tasks.curate.task import curate_step
from tasks.evaluate.task import evaluate_step
from tasks.extract.task import extract_step
from tasks.register.task import register_step
from tasks.tokenize.task import tokenize_step
from tasks.train.task import train_step


def iso_week(moment: datetime | None = None) -> str:
    """The ISO week of `moment` (default: now, UTC) as `YYYY-Www`, e.g. `2026-W48`."""
    year, week, _ = (moment or datetime.now(UTC)).isocalendar()
    return f"{year}-W{week:02d}"


def earlier_curated(config: LmforgeConfig, extracted: StepResult) -> StepResult | None:
    """The newest curate output built from another extract output than `extracted`."""
    for done in reversed(finished_outputs(config.run.work_dir, "curate")):
        inputs = json.loads((Path(done.path) / "config.json").read_text())["inputs"]
        if inputs.get("extract") != extracted.path:
            return done
    return None


@flow(name="collect-and-curate", log_prints=True)
def collect_and_curate(
    config_path: str | None = PRESET, overrides: list[str] | None = None, snapshot: str = ""
) -> dict[str, str]:
    """Crawl (once per `snapshot`, default the ISO week), extract, curate incrementally against
    earlier weeks, tokenize (with the champion's tokenizer when one is registered)."""
    config = load_config(config_path, overrides)
    logger = get_run_logger()
    crawled = crawl_step(config, snapshot or iso_week()).result()
    extracted = extract_step(config, crawled).result()
    earlier = earlier_curated(config, extracted)
    if earlier is not None and not config.curate.previous_output:
        config.curate.previous_output = earlier.path
        logger.info("deduplicating against earlier crawls up to %s", earlier.path)
    curated = curate_step(config, extracted).result()
    champion = champion_model(config)
    if champion is not None and not config.tokenize.tokenizer_file:
        config.tokenize.tokenizer_file = str(Path(champion["model_dir"]) / "tokenizer.json")
        logger.info("tokenizing with the tokenizer of champion version %s", champion["version"])
    shards = tokenize_step(config, curated).result()
    return {"crawl": crawled.path, "curate": curated.path, "tokenize": shards.path}


@flow(name="continue-pretraining", log_prints=True)
def continue_pretraining(
    config_path: str | None = PRESET, overrides: list[str] | None = None, curated: str = ""
) -> dict[str, object]:
    """Tokenize the newest curated documents (or `curated`) with the champion's tokenizer,
    continue training the champion on them, evaluate, register; the promotion gate decides
    whether the new version becomes champion. Documents the champion was trained on already
    train nothing."""
    config = load_config(config_path, overrides)
    logger = get_run_logger()
    champion = champion_model(config)
    if champion is None:
        raise ValueError(
            f"no champion of {config.tracking.model_name!r} in {config.mlflow_uri()}: run the "
            "pipeline first (its first registered version becomes champion)"
        )
    docs = step_output(curated) if curated else latest_output(config.run.work_dir, "curate")
    if docs.fingerprint == champion["curated_fingerprint"]:
        logger.info("champion version %s was trained on %s already", champion["version"], docs.path)
        return {"trained": False, "champion_version": champion["version"], "curated": docs.path}
    config.model = load_model_config(Path(champion["model_dir"]))  # the champion's shape
    config.tokenize.tokenizer_file = str(Path(champion["model_dir"]) / "tokenizer.json")
    shards = tokenize_step(config, docs).result()
    trained = train_step(config, shards, lineage(shards), champion["model_dir"]).result()
    evaluated = evaluate_step(config, trained, shards).result()
    registered = register_step(config, trained, evaluated).result()
    return {"trained": True, "champion_version": champion["version"], **registered.stats}
