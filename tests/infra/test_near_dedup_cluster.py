"""Near dedup on a Spark standalone master with 2 workers on 127.0.0.1 drops exactly the ids the
local session drops (`python -m tasks.curate.near_dedup` as a subprocess with the master URL)."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator

import pyarrow.parquet as pq
import pytest

from model.launch import free_port
from tasks.config import CurateConfig
from tasks.curate.near_dedup import near_duplicates
from tests.infra.conftest import SPARK_HOME, Services, http_ok, server_env
from tests.tasks.curate.planted import planted_set

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def spark_master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A standalone master and 2 workers (1 core, 1 GiB each) on 127.0.0.1; its URL."""
    root = tmp_path_factory.mktemp("standalone")
    services = Services(root)
    port, ui_port = free_port(), free_port()
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    env = server_env(SPARK_HOME=str(SPARK_HOME), PYSPARK_PYTHON=sys.executable)
    master, ui = f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}"
    try:
        services.start(
            "spark-master",
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
            + ["--port", str(port), "--webui-port", str(ui_port)],
            env,
        )
        for k in range(2):
            services.start(
                f"spark-worker-{k}",
                [spark_class, "org.apache.spark.deploy.worker.Worker", master]
                + ["--host", "127.0.0.1", "--cores", "1", "--memory", "1g"]
                + ["--webui-port", str(free_port()), "--work-dir", str(root / f"work-{k}")],
                env,
            )
        services.wait_until(
            "spark-master", lambda: http_ok(f"{ui}/json/", lambda b: '"aliveworkers" : 2' in b)
        )
        yield master
    finally:
        services.stop_all()


def test_cluster_drops_the_same_ids_as_local(spark, spark_master, tmp_path):
    rng = random.Random(7)
    vocabulary = [f"w{k}" for k in range(3000)]
    passages = [" ".join(rng.choices(vocabulary, k=150)) for _ in range(400)]
    docs, _ = planted_set(passages, [0.0, 0.01, 0.03, 0.1, 0.3])
    frame = spark.createDataFrame(docs, "id string, text string").repartition(3)
    frame.write.parquet(str(tmp_path / "input"))
    dropped, _ = near_duplicates(frame, None, CurateConfig())
    local = {(r["id"], r["drop_reason"]) for r in dropped.collect()}
    command = [sys.executable, "-m", "tasks.curate.near_dedup", "--input", str(tmp_path / "input")]
    command += ["--output", str(tmp_path / "out"), "--master", spark_master]
    done = subprocess.run(command, env=server_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    table = pq.read_table(tmp_path / "out" / "dropped")
    on_cluster = set(zip(table["id"].to_pylist(), table["drop_reason"].to_pylist(), strict=True))
    assert len(local) > 200  # the planted copies at 0-3% edits are found
    assert on_cluster == local
