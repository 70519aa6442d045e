"""Real servers on 127.0.0.1 for the cluster-mode test: a Spark standalone master and 2 workers
(pyspark's own `bin/spark-class`), an `mlflow server` and a Prefect server. Each runs in its own
process group with its log in a temporary folder; teardown stops every group it started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyspark
import pytest

from model.launch import free_port

VENV_BIN = Path(sys.executable).parent
SPARK_HOME = Path(pyspark.__file__).parent
START_TIMEOUT_S = 180.0


def http_ok(url: str, accept: Callable[[str], bool] = lambda body: True) -> bool:
    """True when `url` answers 200 and `accept` likes the body."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200 and accept(response.read().decode())
    except OSError:
        return False


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a server's log, for an error message."""
    text = path.read_text(errors="replace") if path.is_file() else "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Services:
    """The processes one fixture started, stopped together by `stop_all`."""

    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        """Start `command` in its own process group, output to `<logs>/<name>.log`."""
        with (self.logs / f"{name}.log").open("w") as log:
            self.processes[name] = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the group holds the server and its children
            )

    def wait_until(self, name: str, ready: Callable[[], bool]) -> None:
        """Wait for `ready()`; fail with the server's log tail if it dies or takes too long."""
        deadline = time.monotonic() + START_TIMEOUT_S
        process = self.processes[name]
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                state = (
                    f"exited with {process.returncode}"
                    if process.poll() is not None
                    else (f"not ready after {START_TIMEOUT_S:.0f}s")
                )
                pytest.fail(f"{name} {state}; its log ends:\n{log_tail(self.logs / f'{name}.log')}")
            time.sleep(0.5)

    def stop_all(self) -> None:
        """SIGTERM every group, then SIGKILL what is still alive after 5 s."""
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Cluster:
    """Where the servers listen; `wait_ready` blocks until all of them answer."""

    services: Services
    spark_master: str
    spark_ui: str
    mlflow_uri: str
    prefect_api_url: str

    def wait_ready(self) -> Cluster:
        """Wait for every server (the worker registered with the master); return self."""
        alive = '"aliveworkers" : 2'
        self.services.wait_until("spark-master", lambda: http_ok(f"{self.spark_ui}/json/"))
        self.services.wait_until(
            "spark-master", lambda: http_ok(f"{self.spark_ui}/json/", lambda body: alive in body)
        )
        self.services.wait_until("mlflow", lambda: http_ok(f"{self.mlflow_uri}/health"))
        self.services.wait_until("prefect", lambda: http_ok(f"{self.prefect_api_url}/health"))
        return self


def server_env(**extra: str) -> dict[str, str]:
    """This environment without settings that would point a server elsewhere, plus `extra`.
    PYTHONPATH puts this checkout first, so executors import the code under test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    fixed = {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYTHONPATH": str(REPO_ROOT),
    }
    return env | fixed | extra


def start_spark(services: Services, root: Path, workers: int = 2) -> tuple[str, str]:
    """A standalone master and `workers` workers (1 core, 1 GiB each; they retry until the
    master is up); returns the master and UI URLs."""
    port, ui_port = free_port(), free_port()
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    env = server_env(SPARK_HOME=str(SPARK_HOME), PYSPARK_PYTHON=sys.executable)
    master = f"spark://127.0.0.1:{port}"
    services.start(
        "spark-master",
        [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
        + ["--port", str(port), "--webui-port", str(ui_port)],
        env,
    )
    for k in range(workers):
        services.start(
            f"spark-worker-{k}",
            [spark_class, "org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1"]
            + ["--cores", "1", "--memory", "1g", "--webui-port", str(free_port())]
            + ["--work-dir", str(root / f"spark-work-{k}")],
            env,
        )
    return master, f"http://127.0.0.1:{ui_port}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Spark standalone, an MLflow server and a Prefect server on 127.0.0.1, starting; call
    `wait_ready()` before use (so a test can do other work while they boot)."""
    root = tmp_path_factory.mktemp("cluster")
    services = Services(root)
    try:
        mlflow_port, prefect_port = free_port(), free_port()
        services.start(
            "mlflow",
            [str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port)]
            + ["--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
            + [
                "--artifacts-destination",
                (root / "mlflow-artifacts").as_uri(),
                "--serve-artifacts",
            ],
            server_env(),
        )
        services.start(
            "prefect",
            [str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1"]
            + ["--port", str(prefect_port), "--no-ui"],
            server_env(PREFECT_HOME=str(root / "prefect-server")),
        )
        master, spark_ui = start_spark(services, root)
        mlflow_uri = f"http://127.0.0.1:{mlflow_port}"
        prefect_api = f"http://127.0.0.1:{prefect_port}/api"
        yield Cluster(services, master, spark_ui, mlflow_uri, prefect_api)
    finally:
        services.stop_all()
