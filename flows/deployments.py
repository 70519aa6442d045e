"""The scheduled deployments, registered on a Prefect server's process work pool.

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m flows.deployments --timezone Europe/Berlin
    prefect worker start --pool lmforge-process        # `make serve` does both

- `collect-and-curate/weekly`: crawl, curate against earlier crawls, tokenize (Mondays 02:00);
- `continue-pretraining/nightly`: train the champion on new shards, evaluate, promote (03:00);
- `finetune/on-demand`: no schedule; run it from the UI or `prefect deployment run`.
The worker runs each flow run as a process in this checkout (the deployments' working folder).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectNotFound
from prefect.schedules import Cron

REPO_ROOT = Path(__file__).resolve().parents[1]
WORK_POOL = "lmforge-process"


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: its flow's entry point, its name, and its cron schedule (None: on demand)."""

    entrypoint: str
    name: str
    cron: str | None
    description: str
    parameters: dict[str, object] = field(default_factory=dict)


DEPLOYMENTS = [
    DeploymentSpec(
        "flows/continuous.py:collect_and_curate",
        "weekly",
        "0 2 * * 1",
        "Weekly: crawl afresh, curate against earlier crawls, tokenize.",
    ),
    DeploymentSpec(
        "flows/continuous.py:continue_pretraining",
        "nightly",
        "0 3 * * *",
        "Nightly: continue pre-training the champion on new shards, evaluate, promote.",
    ),
    DeploymentSpec(
        "flows/steps.py:finetune",
        "on-demand",
        None,
        "On demand: fine-tune the champion on domain data, evaluate, register.",
    ),
]


def ensure_work_pool(name: str = WORK_POOL) -> None:
    """Create the process work pool `name` unless the server has it already."""
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))


def register_deployments(
    timezone: str = "UTC",
    config_path: str = "configs/demo.toml",
    work_pool: str = WORK_POOL,
    specs: list[DeploymentSpec] | None = None,
) -> list[UUID]:
    """Register every deployment (re-registering replaces them); return their ids."""
    ensure_work_pool(work_pool)
    ids = []
    for spec in DEPLOYMENTS if specs is None else specs:
        flow = Flow.from_source(source=str(REPO_ROOT), entrypoint=spec.entrypoint)
        schedules = [Cron(spec.cron, timezone=timezone)] if spec.cron else []
        ids.append(
            flow.deploy(
                name=spec.name,
                work_pool_name=work_pool,
                schedules=schedules,
                parameters={"config_path": config_path, **spec.parameters},
                description=spec.description,
                build=False,
                push=False,
                print_next_steps=False,
            )
        )
    return ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timezone", default="UTC", help="IANA zone of the cron schedules")
    parser.add_argument("--config", default="configs/demo.toml", help="the flows' TOML preset")
    parser.add_argument("--work-pool", default=WORK_POOL, help="process work pool to use")
    args = parser.parse_args(argv)
    for spec, deployment_id in zip(
        DEPLOYMENTS, register_deployments(args.timezone, args.config, args.work_pool), strict=True
    ):
        when = f"cron '{spec.cron}' ({args.timezone})" if spec.cron else "on demand"
        print(f"registered {spec.entrypoint.split(':')[1]}/{spec.name}: {when} -> {deployment_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
