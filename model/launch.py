"""Run `model.train` under the `deepspeed` launcher as a subprocess and collect its summary.

The launcher starts `train.num_ranks` ranks on this host on a free port, so two runs cannot
collide, and kills every rank when one fails, so a crash ends the run instead of hanging it.
With `train.hostfile` it starts `num_ranks` ranks on every host the hostfile lists (over ssh
with pdsh, DeepSpeed's default multi-node backend); a hostfile naming one host runs locally.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from model import events
from model.engine import check_train_config
from model.files import file_hashes
from model.job import Job

REPO_ROOT = Path(__file__).resolve().parents[1]
TAIL_LINES = 50
SUMMARY = "train_summary.json"
FINISHED = "finished"  # out_dir/finished/rank-<R>.json: rank R's work is done and written


def write_completion(out_dir: Path, rank: int, world: int) -> None:
    """Record that this rank finished its work (after rank 0 wrote the summary and export)."""
    folder = Path(out_dir) / FINISHED
    folder.mkdir(exist_ok=True)
    record = {"rank": rank, "world_size": world, "pid": os.getpid(), "time": time.time()}
    temp = folder / f".rank-{rank}.json.tmp"
    temp.write_text(json.dumps(record) + "\n")
    temp.replace(folder / f"rank-{rank}.json")


def finished_despite_exit_code(out_dir: Path) -> str:
    """Why a run whose launcher failed did not finish ("" when it did): every rank wrote its
    completion record and the export matches the checksums in the summary."""
    summary_path = Path(out_dir) / SUMMARY
    if not summary_path.is_file():
        return f"no {SUMMARY}"
    summary = json.loads(summary_path.read_text())
    world = int(summary.get("world_size", 0))
    missing = [r for r in range(world) if not (out_dir / FINISHED / f"rank-{r}.json").is_file()]
    if world < 1 or missing:
        return f"rank(s) {missing or '?'} wrote no completion record"
    expected = summary.get("export_sha256") or {}
    if not expected or file_hashes(Path(out_dir) / "model") != expected:
        return "the export does not match the checksums in the summary"
    return ""


def free_port() -> int:
    """A TCP port nobody listens on right now, for the ranks' rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launcher_env() -> dict[str, str]:
    """This environment, plus the accelerator choice and a PYTHONPATH that finds `model`."""
    env = dict(os.environ)
    if "DS_ACCELERATOR" not in env:
        import torch

        env["DS_ACCELERATOR"] = "cuda" if torch.cuda.is_available() else "cpu"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def stop_process_group(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Terminate the launcher and everything it started; SIGKILL what outlives `grace_s`."""
    # The runner does not forward signals to its ranks, so signal its whole process group
    # (runner, per-host launcher, ranks), which start_new_session gave it.
    os.killpg(process.pid, signal.SIGTERM)
    process.wait()
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)  # raises once no process of the group is left
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def hostfile_hosts(hostfile: Path) -> list[str]:
    """The host names a DeepSpeed hostfile lists (`host slots=N` lines; `#` starts a comment)."""
    if not hostfile.is_file():
        raise FileNotFoundError(
            f"train.hostfile={hostfile} does not exist; write one `host slots=N` line per node "
            '(see infra/deepspeed/hostfile) or set train.hostfile="" to train on this host'
        )
    hosts = []
    for number, raw in enumerate(hostfile.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].startswith("slots="):
            raise ValueError(f"{hostfile}:{number}: expected 'host slots=N', got {raw!r}")
        hosts.append(parts[0])
    if not hosts:
        raise ValueError(f"{hostfile} lists no hosts; write one `host slots=N` line per node")
    return hosts


def launcher_command(
    job_path: Path, num_ranks: int, port: int, hostfile: str = "", master_addr: str = ""
) -> list[str]:
    """The `deepspeed` launcher command line: `num_ranks` ranks on this host, or on every host
    of `hostfile` with the rendezvous at `master_addr` (default: as the docstring of
    TrainConfig.master_addr says)."""
    command = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", str(num_ranks)]
    remote = False
    if hostfile:
        remote = len(hostfile_hosts(Path(hostfile))) > 1
        # One host runs locally: DeepSpeed's ssh check (meant for remote nodes) is not needed.
        command += ["--hostfile", hostfile] + ([] if remote else ["--no_ssh_check"])
    master_addr = master_addr or ("" if remote else "127.0.0.1")
    if master_addr:
        command += ["--master_addr", master_addr]
    return command + [
        "--master_port",
        str(port),
        "--no_local_rank",
        "--module",
        "model.train",
        "--job",
        str(job_path),
    ]


PORT_ATTEMPTS = 3
PORT_TAKEN = "address already in use"  # TCPStore's EADDRINUSE message, lower-cased


def run_launcher(
    command: list[str],
    env: dict[str, str],
    on_line: Callable[[str], None] | None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[int, deque[str]]:
    """Run the launcher to its end, passing each output line on, and each event line
    (model/events.py) parsed to `on_event` instead; (exit code, last lines). Any exception
    here (a cancelled flow run) stops the launcher and every rank first."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with subprocess.Popen(
        command,  # run in our working directory, so relative paths in the job mean the same
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,  # its own process group: see the abort below
    ) as process:
        assert process.stdout is not None
        try:
            for raw in process.stdout:
                line = raw.rstrip("\n")
                event = events.parse(line)
                if event is not None:
                    if on_event is not None:
                        try:
                            on_event(event)
                        except Exception as err:  # noqa: BLE001 - progress must not end a run
                            warnings.warn(f"progress event not handled: {err!r}", stacklevel=2)
                    continue
                tail.append(line)
                if on_line is not None:
                    on_line(line)
        except BaseException:
            stop_process_group(process)
            raise
        return process.wait(), tail


def launch_training(
    job: Job | dict[str, Any],
    out_dir: Path,
    on_line: Callable[[str], None] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Write out_dir/job.json, train with the launcher, return the parsed train_summary.json.
    `on_line` gets every output line, `on_event` every progress event (model/events.py)."""
    if not isinstance(job, Job):  # the job.json form (tests, benchmarks): checked once, here
        job = Job.from_dict(job)
    job.validate()  # again: its fields may have been set one by one (a LoRA job's rules)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    job_path = out_dir / "job.json"
    job_path.write_text(json.dumps(job.to_dict(), indent=2) + "\n")
    # This attempt's records only: an earlier attempt's must not vouch for this one.
    (out_dir / SUMMARY).unlink(missing_ok=True)
    shutil.rmtree(out_dir / FINISHED, ignore_errors=True)
    train = job.train
    if train.num_ranks < 1:
        raise ValueError(f"train.num_ranks must be >= 1, got {train.num_ranks}")
    env = launcher_env()
    # A setting DeepSpeed would refuse fails here, before any rank starts.
    check_train_config(train, env["DS_ACCELERATOR"])
    for attempt in range(PORT_ATTEMPTS):
        command = launcher_command(
            job_path, train.num_ranks, free_port(), train.hostfile, train.master_addr
        )
        code, tail = run_launcher(command, env, on_line, on_event)
        # The rendezvous port was free when chosen, but something took it before rank 0
        # listened on it (seconds later): nothing ran yet, so try another port.
        taken = code != 0 and any(PORT_TAKEN in line.lower() for line in tail)
        if not taken or attempt == PORT_ATTEMPTS - 1:
            break
        if on_line is not None:
            on_line(f"launcher: the rendezvous port was taken meanwhile; again on another ({code})")
    summary_path = out_dir / SUMMARY
    if code != 0:
        last = "\n".join(tail)
        problem = finished_despite_exit_code(out_dir)
        if problem:
            raise RuntimeError(
                f"training failed: the deepspeed launcher exited with {code} ({problem}):\n{last}"
            )
        # Every rank finished and the export verifies: a crash in teardown loses nothing.
        summary = json.loads(summary_path.read_text())
        summary["teardown_warning"] = (
            f"the deepspeed launcher exited with {code} after every rank had finished and the "
            f"export's checksums verified; the output is kept. Its last lines:\n{last}"
        )
        warnings.warn(summary["teardown_warning"], stacklevel=2)
        return summary
    if not summary_path.is_file():
        raise RuntimeError(f"training exited 0 but wrote no {summary_path}:\n" + "\n".join(tail))
    return json.loads(summary_path.read_text())
