"""Browser check of both UIs (`make ui-check`): a real Prefect server and MLflow UI, a finished
pipeline run, and headless Chromium that must see the flow run, its artifacts and the
registered model. Screenshots and the rendered pages go to `<work>/` (default runs/ui-check).

    .venv/bin/python infra/ui_check.py [--work runs/ui-check] [--config configs/tiny.toml]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from model.launch import free_port  # noqa: E402

BIN = Path(sys.executable).parent


@contextlib.contextmanager
def server(command: list[str], health: str, log: Path, env: dict[str, str]) -> Iterator[None]:
    """Run `command` until the block ends; wait (up to 4 minutes) until `health` answers."""
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(health, timeout=5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} did not start; see {log}") from None
                time.sleep(2)
        yield
    finally:
        process.terminate()
        process.wait(timeout=60)


def browse(url: str, name: str, out: Path, expected: list[str]) -> None:
    """Render `url` in headless Chromium, save `<name>.png` and `<name>.html`, and fail unless
    the rendered page contains every `expected` text."""
    common = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--virtual-time-budget=30000",
    ]
    page = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, text=True, timeout=180, check=True
    ).stdout
    (out / f"{name}.html").write_text(page)
    subprocess.run(
        [*common, f"--screenshot={out / name}.png", url],
        capture_output=True,
        timeout=180,
        check=True,
    )
    missing = [text for text in expected if text not in page]
    if missing:
        raise SystemExit(f"ui-check: {url} does not show {missing}; see {out / name}.html")
    print(f"ui-check: {url} shows {expected} -> {out / name}.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="runs/ui-check", help="work directory of the run")
    # the smallest whole run (a few minutes): what the UIs show does not depend on its size
    parser.add_argument("--config", default="configs/tiny.toml", help="TOML preset of the run")
    args = parser.parse_args(argv)
    config = (REPO / args.config).resolve()  # relative paths: from the repository's root
    work = (REPO / args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    prefect_port, mlflow_port = free_port(), free_port()
    api = f"http://127.0.0.1:{prefect_port}/api"
    env = dict(os.environ, PREFECT_HOME=str(work / "prefect"), PREFECT_API_URL=api)
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    prefect = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1"]
    with server(
        [*prefect, "--port", str(prefect_port)], f"{api}/health", work / "prefect.log", env
    ):
        model_name = "lmforge-ui-check"
        overrides = [f"run.work_dir={work}", f"tracking.model_name={model_name}"]
        overrides.append(f"tracking.ui_url=http://127.0.0.1:{mlflow_port}")
        sets = [arg for override in overrides for arg in ("--set", override)]
        subprocess.run(
            [str(BIN / "lmforge"), "run", "--config", str(config), *sets], env=env, check=True
        )
        run_id, run_name = latest_pipeline_run(env)
        mlflow = [str(BIN / "mlflow"), "ui", "--backend-store-uri", f"sqlite:///{work}/mlflow.db"]
        with server(
            [*mlflow, "--host", "127.0.0.1", "--port", str(mlflow_port)],
            f"http://127.0.0.1:{mlflow_port}/health",
            work / "mlflow.log",
            env,
        ):
            ui = f"http://127.0.0.1:{prefect_port}"
            browse(f"{ui}/runs/flow-run/{run_id}", "prefect-flow-run", work, [run_name])
            artifact_keys = ["curate-funnel", "train-progress", "evaluation-report"]
            browse(f"{ui}/artifacts", "prefect-artifacts", work, artifact_keys)
            models = f"http://127.0.0.1:{mlflow_port}/#/models/{model_name}"
            browse(models, "mlflow-model", work, [model_name, "Version 1"])
    return 0


def latest_pipeline_run(env: dict[str, str]) -> tuple[str, str]:
    """Id and name of the newest completed `pipeline` flow run on the server in `env`."""
    code = (
        "from prefect.client.orchestration import get_client\n"
        "with get_client(sync_client=True) as c:\n"
        "    runs = c.read_flow_runs(sort='START_TIME_DESC')\n"
        "    done = [r for r in runs if r.state.is_completed()]\n"
        "    print(done[0].id, done[0].name)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    run_id, name = out.stdout.split()[-2:]
    return run_id, name


if __name__ == "__main__":
    raise SystemExit(main())
