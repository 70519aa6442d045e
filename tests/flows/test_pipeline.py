"""End to end at tiny size: the real pipeline flow on a real Prefect server, Spark, the
`deepspeed` launcher and MLflow; the states and artifacts the Prefect UI shows; a re-run that
must skip every finished step; a failure in the middle step, then a re-run that resumes there."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from tokenizers import Tokenizer

from flows.continuous import continue_pretraining
from flows.outputs import latest_output
from flows.pipeline import pipeline
from model.checkpoint import load_model_config
from model.faults import ENV as FAULTS_ENV
from model.token_format import read_documents
from tasks.config import load_config
from tasks.register.imported import import_model
from tests.model.conftest import build_tiny_corpus
from tests.model.hf_fixtures import hf_checkpoint

pytestmark = pytest.mark.e2e

# The smallest whole pipeline (configs/tiny.toml, also infra/ui_check.py's run)
TINY_CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "tiny.toml")
TINY = ["tracking.model_name=tiny-e2e"]


@pytest.fixture(scope="module")
def tiny_state(prefect_api, spark, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp("e2e")
    overrides = [*TINY, f"run.work_dir={work_dir}"]
    # On the way, a crash in teardown (model/faults.py): rank 0 aborts after it has finished.
    # The train step must keep its output, say so, and the pipeline go on.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(FAULTS_ENV, json.dumps({"abort_at_exit_ranks": [0]}))
        state = pipeline(config_path=TINY_CONFIG, overrides=overrides, return_state=True)
    return work_dir, overrides, state


@pytest.fixture(scope="module")
def tiny_run(tiny_state):
    work_dir, overrides, state = tiny_state
    return work_dir, overrides, state.result()


def task_states(flow_run_id) -> dict[str, tuple[str, str]]:
    """`{task name: (state type, state name)}` of one flow run's task runs."""
    only = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=only)
    return {r.name.rsplit("-", 1)[0]: (r.state.type.value, r.state.name) for r in runs}


def settled_task_states(flow_run_id, expected: dict[str, tuple[str, str]], wait_s: float = 60):
    """`task_states` once it equals `expected`, or as it is after `wait_s`: the client sends
    task-run states as events, which the server records a little later, in its own time."""
    deadline = time.monotonic() + wait_s
    while (states := task_states(flow_run_id)) != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    return states


def artifacts(flow_run_id) -> dict[str, object]:
    """`{key: data}` of one flow run's artifacts (the newest version of each key)."""
    only = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(flow_run_filter=only, sort="CREATED_DESC")
    newest: dict[str, object] = {}
    for artifact in found:
        data = artifact.data
        newest.setdefault(
            artifact.key,
            json.loads(data) if artifact.type == "table" and isinstance(data, str) else data,
        )
    return newest


def test_every_step_ran_and_published_its_output(tiny_run):
    _, _, summary = tiny_run
    assert list(summary["steps"]) == [
        "crawl",
        "extract",
        "curate",
        "tokenize",
        "train",
        "evaluate",
        "register",
    ]
    for step in summary["steps"].values():
        assert not step["skipped"]
        assert (Path(step["path"]) / "_SUCCESS").is_file()
        assert json.loads((Path(step["path"]) / "stats.json").read_text())
    assert summary["pages_fetched"] == 31  # the front page + 30 module pages
    assert 0 < summary["documents_kept"] <= summary["documents_extracted"]


def test_shards_decode_back_to_the_curated_text(tiny_run):
    _, _, summary = tiny_run
    curated = pq.read_table(Path(summary["steps"]["curate"]["path"]) / "docs").to_pydict()
    token_dir = Path(summary["steps"]["tokenize"]["path"])
    tokenizer = Tokenizer.from_file(str(token_dir / "tokenizer.json"))
    eot = tokenizer.token_to_id("<|endoftext|>")
    decoded = []
    for shard in sorted(token_dir.glob("*.bin")):
        for doc in read_documents(shard):  # each without its end-of-text separator
            assert eot not in doc
            decoded.append(tokenizer.decode(doc, skip_special_tokens=False))
    assert sorted(decoded) == sorted(curated["text"])


def test_training_loss_goes_down_and_model_is_exported(tiny_run):
    _, _, summary = tiny_run
    train_dir = Path(summary["steps"]["train"]["path"])
    records = [json.loads(line) for line in (train_dir / "metrics.jsonl").open()]
    losses = [r["train_loss"] for r in records if "train_loss" in r]
    assert len(losses) >= 3
    assert losses[-1] < losses[0] - 0.5
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        assert (train_dir / "model" / name).is_file()
    assert summary["val_perplexity"] > 1 and len(summary["samples"]) == 3


def test_run_and_model_version_exist_in_mlflow(tiny_run):
    from mlflow import MlflowClient

    work_dir, _, summary = tiny_run
    client = MlflowClient(summary["tracking_uri"])
    assert summary["tracking_uri"] == f"sqlite:///{work_dir / 'mlflow.db'}"
    run = client.get_run(summary["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert {"train_loss", "lr", "val_loss", "eval_perplexity"} <= set(run.data.metrics)
    assert run.data.params["model.n_layer"] == "2"
    assert run.data.tags["lmforge.fingerprint.tokenize"]
    assert run.data.tags["lmforge.train.health"] == "healthy"
    # the injected abort at exit: kept, with the warning on the run
    assert "the output is kept" in run.data.tags["lmforge.train.teardown_warning"]
    version = client.get_model_version("tiny-e2e", str(summary["model_version"]))
    assert version.run_id == summary["mlflow_run_id"]
    assert version.tags["lmforge.manifest_sha256"] == run.data.tags["lmforge.manifest_sha256"]


def test_the_ui_shows_states_and_artifacts(tiny_state, tiny_run):
    _, _, state = tiny_state
    _, _, summary = tiny_run
    run_id = state.state_details.flow_run_id
    assert state.is_completed()
    expected = {name: ("COMPLETED", "Completed") for name in summary["steps"]}
    assert settled_task_states(run_id, expected) == expected
    found = artifacts(run_id)
    data_steps = ["crawl", "extract", "curate", "tokenize"]
    expected = {f"{step}-{kind}" for step in data_steps for kind in ("funnel", "summary")}
    assert expected | {"crawl-progress", "train-progress", "evaluation-report"} <= set(found)
    assert float(found["crawl-progress"]) == float(found["train-progress"]) == 100.0

    stats = json.loads((Path(summary["steps"]["curate"]["path"]) / "stats.json").read_text())
    rows = found["curate-funnel"]
    stages = {r["stage"]: r["documents"] for r in rows if r["stage"] != "dropped"}
    assert stages == stats["funnel"]
    reasons = {r["reason"]: r["documents"] for r in rows if r["stage"] == "dropped"}
    assert reasons == {
        k.removeprefix("dropped_"): v for k, v in stats.items() if k.startswith("dropped_")
    }
    assert sum(reasons.values()) == stats["input"] - stats["kept"]
    assert f"| documents kept | {stats['kept']:,} |" in found["curate-summary"]
    crawl_rows = {r["stage"]: r["documents"] for r in found["crawl-funnel"]}
    assert crawl_rows["fetched"] == summary["pages_fetched"]
    token_rows = {r["split"]: r["tokens"] for r in found["tokenize-funnel"]}
    assert (
        token_rows["train"] == summary["tokens_train"]
        and token_rows["val"] == summary["tokens_val"]
    )

    report = found["evaluation-report"]
    assert f"| val_loss | {summary['val_loss']:.4f} |" in report
    assert f"/runs/{summary['mlflow_run_id']})" in report
    assert f"#/models/tiny-e2e/versions/{summary['model_version']})" in report
    assert "Promotion:" in report


def test_rerun_skips_every_finished_step(tiny_run):
    _, overrides, first = tiny_run
    state = pipeline(config_path=TINY_CONFIG, overrides=overrides, return_state=True)
    second = state.result()
    assert all(step["skipped"] for step in second["steps"].values())
    assert second["model_version"] == first["model_version"]
    assert second["steps"] == {k: {**v, "skipped": True} for k, v in first["steps"].items()}
    run_id = state.state_details.flow_run_id
    skipped = {name: ("COMPLETED", "Skipped") for name in first["steps"]}
    assert settled_task_states(run_id, skipped) == skipped
    assert not {"crawl-progress", "train-progress"} & set(artifacts(run_id))  # nothing ran


def test_continue_pretraining_trains_nothing_without_new_documents(tiny_run):
    _, overrides, first = tiny_run
    result = continue_pretraining(config_path=TINY_CONFIG, overrides=overrides)
    assert result == {
        "trained": False,
        "champion_version": first["model_version"],  # the first version became champion
        "curated": first["steps"]["curate"]["path"],
    }


def test_continue_pretraining_from_an_imported_champion(tiny_run, tmp_path):
    """The nightly flow starts from an HF Llama checkpoint imported as champion: its shape,
    weights and tokenizer (whose end-of-text token is its own `</s>`)."""
    work_dir, overrides, _ = tiny_run
    mine = [*overrides, "tracking.model_name=imported-e2e", "train.steps=10", "train.eval_every=10"]
    tokenizer = build_tiny_corpus(tmp_path / "tokens", repeats=1) / "tokenizer.json"
    source = hf_checkpoint(tmp_path / "hf", tokenizer, 2, False)
    config = load_config(TINY_CONFIG, mine)
    base = import_model(config, str(source), "imported-e2e", champion=True)
    result = continue_pretraining(config_path=TINY_CONFIG, overrides=mine)
    assert result["trained"] is True and result["champion_version"] == base["version"]
    # the imported champion has no evaluation of ours: the gate measures it on the same data
    reason = result["promotion"]["reason"]
    assert "measured now on this version's validation data: val_bpb:" in reason
    assert set(result["promotion"]["champion"]) == {"val_bpb"}
    manifest = json.loads(
        (Path(latest_output(work_dir, "tokenize").path) / "manifest.json").read_text()
    )
    eos = Tokenizer.from_file(str(tokenizer)).get_vocab_size()  # </s>, added last
    assert manifest["eot_id"] == eos and manifest["vocab_size"] == eos + 1
    trained = Path(latest_output(work_dir, "train").path)
    summary = json.loads((trained / "train_summary.json").read_text())
    # from the imported weights: a fresh model would start at ln(vocab), these well above
    assert summary["first_loss"] > math.log(eos + 1) + 0.5
    assert load_model_config(trained / "model") == load_model_config(Path(base["model_dir"]))
    kept = json.loads((trained / "model" / "tokenizer_config.json").read_text())
    assert kept["eos_token"] == "</s>"


def output_files(folder: Path) -> dict[str, bytes]:
    """The files under `folder` by relative path, less the run's markers and timings."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name not in {"_SUCCESS", "stats.json"}
    }


def evaluation(folder: Path) -> dict[str, object]:
    """An evaluate output's numbers and samples, less timings and the MLflow run id."""
    stats = json.loads((folder / "stats.json").read_text())
    return {k: v for k, v in stats.items() if k not in {"seconds", "mlflow_run_id"}}


def test_a_failed_middle_step_then_a_rerun_resumes_there(tiny_run, tmp_path):
    work_dir, overrides, first = tiny_run
    later = ["tokenize", "train", "evaluate"]
    for step in [*later, "register"]:  # keep the uninterrupted run's outputs to compare with
        shutil.move(work_dir / step, tmp_path / step)
    (work_dir / "tokenize").write_text("a file where the step's folder goes: tokenize fails")

    failed = pipeline(config_path=TINY_CONFIG, overrides=overrides, return_state=True)
    assert failed.is_failed()
    expected = {
        "crawl": ("COMPLETED", "Skipped"),
        "extract": ("COMPLETED", "Skipped"),
        "curate": ("COMPLETED", "Skipped"),
        "tokenize": ("FAILED", "Failed"),
    }
    assert settled_task_states(failed.state_details.flow_run_id, expected) == expected

    (work_dir / "tokenize").unlink()
    resumed = pipeline(config_path=TINY_CONFIG, overrides=overrides)
    ran = {name: not step["skipped"] for name, step in resumed["steps"].items()}
    assert ran == dict.fromkeys(["crawl", "extract", "curate"], False) | dict.fromkeys(
        [*later, "register"], True
    )
    assert {k: v["path"] for k, v in resumed["steps"].items()} == {
        k: v["path"] for k, v in first["steps"].items()
    }
    tokens, trained, evaluated = (Path(first["steps"][step]["path"]) for step in later)
    assert output_files(tokens) == output_files(tmp_path / "tokenize" / tokens.name)
    assert output_files(trained / "model") == output_files(
        tmp_path / "train" / trained.name / "model"
    )
    assert evaluation(evaluated) == evaluation(tmp_path / "evaluate" / evaluated.name)
    assert resumed["val_loss"] == first["val_loss"]
    assert resumed["model_version"] == first["model_version"] + 1
