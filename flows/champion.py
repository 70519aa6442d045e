"""The current champion: the model version the MLflow alias `champion` points at, with its
exported folder (downloaded once into `<work_dir>/models/<name>/<version>/`)."""

from __future__ import annotations

from typing import Any

from tasks.config import LmforgeConfig
from tasks.register.resolve import registry_version, resolve_model


def champion_uri(config: LmforgeConfig) -> str:
    """`models:/<tracking.model_name>@champion`."""
    return f"models:/{config.tracking.model_name}@champion"


def champion_model(config: LmforgeConfig) -> dict[str, Any] | None:
    """`{version, run_id, model_dir, curated_fingerprint}` of the champion (the last: the curate
    output it was trained on, from its lineage tags), or None while no version holds the alias."""
    try:
        version = registry_version(config, champion_uri(config))
    except ValueError:
        return None
    resolved = resolve_model(config, champion_uri(config))
    return {
        "version": resolved.version,
        "run_id": resolved.run_id,
        "model_dir": str(resolved.model_dir),
        "curated_fingerprint": version.tags.get("lmforge.fingerprint.curate", ""),
    }
