"""The scheduled deployments, registered on a real Prefect server and read back."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client

from flows.deployments import DEPLOYMENTS, WORK_POOL, register_deployments


@pytest.fixture(scope="module")
def registered(prefect_api):
    return register_deployments(timezone="Europe/Berlin", config_path="configs/demo.toml")


def test_deployments_have_their_schedules_and_the_process_pool(registered):
    with get_client(sync_client=True) as client:
        assert client.read_work_pool(WORK_POOL).type == "process"
        found = {}
        for deployment_id in registered:
            deployment = client.read_deployment(deployment_id)
            flow = client.read_flow(deployment.flow_id)
            found[f"{flow.name}/{deployment.name}"] = deployment
    assert set(found) == {
        "collect-and-curate/weekly",
        "continue-pretraining/nightly",
        "finetune/on-demand",
    }
    weekly, nightly = found["collect-and-curate/weekly"], found["continue-pretraining/nightly"]
    assert [(s.schedule.cron, s.schedule.timezone) for s in weekly.schedules] == [
        ("0 2 * * 1", "Europe/Berlin")
    ]
    assert [(s.schedule.cron, s.schedule.timezone) for s in nightly.schedules] == [
        ("0 3 * * *", "Europe/Berlin")
    ]
    assert found["finetune/on-demand"].schedules == []
    for deployment in found.values():
        assert deployment.work_pool_name == WORK_POOL
        assert deployment.parameters["config_path"] == "configs/demo.toml"
        # the UI's run form: the preset and the overrides are typed parameters
        properties = deployment.parameter_openapi_schema["properties"]
        assert {"config_path", "overrides"} <= set(properties)


def test_registering_again_replaces_instead_of_duplicating(registered):
    again = register_deployments(timezone="Europe/Berlin", config_path="configs/demo.toml")
    assert again == registered
    assert len(DEPLOYMENTS) == 3
