"""Cluster mode: the same pipeline against real Spark standalone, MLflow and Prefect servers gives
the embedded run's data (the same kept documents, byte-identical token shards) and a model that
is registered and loadable through the MLflow server. Training runs two ranks from a hostfile.
Near dedup on the standalone master (2 workers) drops exactly the ids the local session drops."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import pandas as pd
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer

from model.checkpoint import load_model
from model.generate import complete
from tasks.config import CurateConfig
from tasks.crawl.pydoc_site import generate_site, serve_site
from tasks.curate.near_dedup import near_duplicates
from tests.infra.conftest import server_env
from tests.tasks.curate.planted import planted_set

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
LMFORGE = Path(sys.executable).parent / "lmforge"
TINY = [
    "crawl.max_pages=40",
    "crawl.allowed_hosts=['127.0.0.1']",
    "crawl.allow_private_hosts=['127.0.0.1']",
    # pydoc pages are repetitive by nature: the quality filters would leave too few for a split
    "curate.filters=['length','links']",
    # no page may hit the per-page extraction limit on a loaded machine in one run only
    "extract.time_limit_s=300",
    "tokenize.vocab_size=512",
    "tokenize.val_fraction=0.2",
    "model.n_layer=2",
    "model.n_head=2",
    "model.n_embd=64",
    "model.block_size=64",
    "train.steps=20",
    "train.micro_batch=8",
    "train.log_every=5",
    "train.eval_every=10",
    "train.eval_batches=2",
    "train.warmup_steps=5",
    "evaluate.max_batches=4",
    "evaluate.max_new_tokens=12",
    "tracking.model_name=tiny-cluster",
]
DATA_STEPS = ["crawl", "extract", "curate", "tokenize"]


def run_pipeline(
    work_dir: Path, overrides: list[str], env: dict[str, str], until: str = "register"
) -> dict[str, Any]:
    """`lmforge run` (up to step `until`) as a subprocess; its summary, or a failure showing
    the output's tail."""
    summary_path = work_dir / "summary.json"
    command = [str(LMFORGE), "run", "--until", until, "--summary-json", str(summary_path)]
    command += [
        arg for o in [*TINY, f"run.work_dir={work_dir}", *overrides] for arg in ("--set", o)
    ]
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        pytest.fail(f"lmforge run exited {done.returncode}:\n{(done.stdout + done.stderr)[-6000:]}")
    return json.loads(summary_path.read_text())


def pipeline_env(**extra: str) -> dict[str, str]:
    """The test's environment without Prefect/MLflow pointers, plus `extra`; PYTHONPATH puts
    this checkout first, so the run executes the code under test."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    keep["PYTHONPATH"] = str(REPO_ROOT)
    # A first start of the embedded server migrates a fresh database, slowly on a busy machine.
    quiet = {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }
    return keep | quiet | extra


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory):
    """One served pydoc site for both runs: document ids hash the URL, port included. Its 40
    modules cover most links of the first 40 pages (a link to an unrendered module is a 404)."""
    folder = tmp_path_factory.mktemp("site")
    generate_site(40, folder)
    with serve_site(folder) as front_page:
        yield front_page


@pytest.fixture(scope="module")
def runs(seed: str, cluster, tmp_path_factory: pytest.TempPathFactory):
    """The embedded run's data steps and the cluster run of the whole tiny pipeline, on the
    same site (the embedded training, evaluation and registry are the other e2e tests')."""
    root = tmp_path_factory.mktemp("runs")
    crawl = [f"crawl.seeds=['{seed}']"]
    # The embedded run goes first, while the servers boot.
    embedded_env = pipeline_env(PREFECT_HOME=str(root / "prefect-embedded"))
    embedded = run_pipeline(root / "embedded", crawl, embedded_env, until="tokenize")
    cluster.wait_ready()
    hostfile = root / "hostfile"
    hostfile.write_text("localhost slots=2\n")  # one machine: two ranks on it
    on_cluster = [
        *crawl,
        f"spark.master={cluster.spark_master}",
        f"tracking.tracking_uri={cluster.mlflow_uri}",
        f"train.hostfile={hostfile}",
        "train.num_ranks=2",
    ]
    env = pipeline_env(PREFECT_API_URL=cluster.prefect_api_url, SPARK_LOCAL_IP="127.0.0.1")
    return embedded, run_pipeline(root / "cluster", on_cluster, env)


def kept_ids(summary: dict[str, Any]) -> list[str]:
    docs = pq.read_table(Path(summary["steps"]["curate"]["path"]) / "docs", columns=["id"])
    return sorted(docs.column("id").to_pylist())


def shard_checksums(summary: dict[str, Any]) -> dict[str, str]:
    manifest = json.loads(
        (Path(summary["steps"]["tokenize"]["path"]) / "manifest.json").read_text()
    )
    return {shard["file"]: shard["sha256"] for shard in manifest["shards"]}


def test_cluster_run_keeps_the_same_documents_and_writes_identical_shards(runs) -> None:
    embedded, on_cluster = runs
    assert list(embedded["steps"]) == DATA_STEPS  # `--until tokenize`: no model
    assert embedded["model_version"] is None and embedded["train_final_loss"] is None
    assert on_cluster["pages_fetched"] == embedded["pages_fetched"] == 40
    assert kept_ids(on_cluster) == kept_ids(embedded) != []
    assert shard_checksums(on_cluster) == shard_checksums(embedded) != {}
    for step in DATA_STEPS:  # the data steps' settings and inputs agree, so their fingerprints do
        assert (
            Path(on_cluster["steps"][step]["path"]).name
            == Path(embedded["steps"][step]["path"]).name
        )


def test_the_servers_did_the_work(runs, cluster) -> None:
    _, on_cluster = runs
    assert on_cluster["tracking_uri"] == cluster.mlflow_uri
    master = json.loads(urlopen(f"{cluster.spark_ui}/json/", timeout=10).read())
    assert "lmforge" in {app["name"] for app in master["completedapps"]}
    request = Request(
        f"{cluster.prefect_api_url}/flow_runs/filter",
        data=json.dumps({"limit": 10}).encode(),
        headers={"Content-Type": "application/json"},
    )
    flow_runs = json.loads(urlopen(request, timeout=10).read())
    assert [run["state_type"] for run in flow_runs] == ["COMPLETED"]
    train = json.loads((Path(on_cluster["steps"]["train"]["path"]) / "stats.json").read_text())
    assert train["world_size"] == 2  # the hostfile's one host, two slots


def test_model_is_registered_and_loads_through_the_server(runs, cluster) -> None:
    import mlflow
    from mlflow import MlflowClient

    _, on_cluster = runs
    client = MlflowClient(cluster.mlflow_uri)
    version = client.get_model_version("tiny-cluster", str(on_cluster["model_version"]))
    assert version.run_id == on_cluster["mlflow_run_id"] and version.status == "READY"
    run = client.get_run(version.run_id)
    assert run.data.params["spark.master"].startswith("spark://127.0.0.1:")
    assert {"train_loss", "val_loss"} <= set(run.data.metrics)
    mlflow.set_tracking_uri(cluster.mlflow_uri)
    model = mlflow.pyfunc.load_model(f"models:/tiny-cluster/{version.version}")
    settings = {"max_new_tokens": 5, "temperature": 0.8, "top_k": 40, "seed": 7}
    served = model.predict(pd.DataFrame({"prompt": ["The module"]}), params=settings)
    # The model the server hands out is the one training exported: the same seeded completion.
    export = Path(on_cluster["steps"]["train"]["path"]) / "model"
    local, _ = load_model(export)
    tokenizer = Tokenizer.from_file(str(export / "tokenizer.json"))
    assert served == [complete(local, tokenizer, "The module", 5, 0.8, 40, 7)]


def test_near_dedup_on_the_cluster_drops_the_same_ids_as_local(spark, cluster, tmp_path) -> None:
    """`python -m tasks.curate.near_dedup` against the standalone master (2 workers) drops
    exactly the ids and reasons the local session drops."""
    rng = random.Random(7)
    vocabulary = [f"w{k}" for k in range(3000)]
    passages = [" ".join(rng.choices(vocabulary, k=150)) for _ in range(400)]
    docs, _ = planted_set(passages, [0.0, 0.01, 0.03, 0.1, 0.3])
    frame = spark.createDataFrame(docs, "id string, text string").repartition(3)
    frame.write.parquet(str(tmp_path / "input"))
    dropped, _ = near_duplicates(frame, None, CurateConfig())
    local = {(r["id"], r["drop_reason"]) for r in dropped.collect()}
    command = [sys.executable, "-m", "tasks.curate.near_dedup", "--input", str(tmp_path / "input")]
    command += ["--output", str(tmp_path / "out"), "--master", cluster.wait_ready().spark_master]
    done = subprocess.run(command, env=server_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    table = pq.read_table(tmp_path / "out" / "dropped")
    on_cluster = set(zip(table["id"].to_pylist(), table["drop_reason"].to_pylist(), strict=True))
    assert len(local) > 200  # the planted copies at 0-3% edits are found
    assert on_cluster == local
