"""The `deepspeed` launcher command line: one host, or the hosts of a hostfile."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from model import launch
from model.launch import free_port, hostfile_hosts, launcher_command
from tests.model.test_train import job

INFRA_HOSTFILE = Path(__file__).resolve().parents[2] / "infra" / "deepspeed" / "hostfile"


def option(command: list[str], name: str) -> str | None:
    """The value after `name` in `command`, or None when the option is absent."""
    return command[command.index(name) + 1] if name in command else None


def test_one_host_without_hostfile_rendezvous_on_loopback() -> None:
    command = launcher_command(Path("job.json"), 2, 29511)
    assert option(command, "--num_gpus") == "2" and option(command, "--master_port") == "29511"
    assert option(command, "--master_addr") == "127.0.0.1"
    assert "--hostfile" not in command
    assert command[-4:] == ["--module", "model.train", "--job", "job.json"]


def test_two_node_hostfile_is_passed_and_master_left_to_deepspeed() -> None:
    command = launcher_command(Path("job.json"), 8, 29500, str(INFRA_HOSTFILE))
    assert hostfile_hosts(INFRA_HOSTFILE) == ["node1", "node2"]
    assert option(command, "--hostfile") == str(INFRA_HOSTFILE)
    assert option(command, "--num_gpus") == "8"  # ranks per node
    assert "--master_addr" not in command and "--no_ssh_check" not in command
    given = launcher_command(Path("job.json"), 8, 29500, str(INFRA_HOSTFILE), "10.0.0.11")
    assert option(given, "--master_addr") == "10.0.0.11"


def test_one_host_hostfile_runs_locally(tmp_path: Path) -> None:
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("# this machine only\nlocalhost slots=2\n")
    command = launcher_command(Path("job.json"), 2, 29500, str(hostfile))
    assert option(command, "--hostfile") == str(hostfile)
    assert "--no_ssh_check" in command and option(command, "--master_addr") == "127.0.0.1"


def test_bad_hostfiles_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        launcher_command(Path("job.json"), 1, 29500, str(tmp_path / "missing"))
    (tmp_path / "bad").write_text("node1 8\n")
    with pytest.raises(ValueError, match=r"bad:1: expected 'host slots=N'"):
        hostfile_hosts(tmp_path / "bad")
    (tmp_path / "empty").write_text("# nobody\n")
    with pytest.raises(ValueError, match="lists no hosts"):
        hostfile_hosts(tmp_path / "empty")


def test_a_rendezvous_port_taken_meanwhile_is_retried_on_another(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:  # holds the port the first attempt is given
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        ports = [squatter.getsockname()[1]]
        monkeypatch.setattr(launch, "free_port", lambda: ports.pop() if ports else free_port())
        lines: list[str] = []
        spec = job(tiny_corpus, tmp_path, steps=2)
        summary = launch.launch_training(spec, tmp_path, lines.append)
    assert summary["steps"] == 2
    assert any(line.startswith("launcher: the rendezvous port was taken") for line in lines)
