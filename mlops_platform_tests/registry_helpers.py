"""Registering versions by hand, as anyone with write access to the registry can."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlops_platform.registry.store import ModelRegistry, directory_sha256

NAME = "flight_delay"


def register_dir(registry: ModelRegistry, local: Path) -> str:
    """Register a model directory by hand, with a correct digest tag (anyone can)."""
    mlflow = registry.fluent()
    with mlflow.start_run(experiment_id=registry.experiment_id(NAME)) as run:
        mlflow.log_artifacts(str(local), "model")
    mv = registry.client.create_model_version(
        NAME, f"runs:/{run.info.run_id}/model", run.info.run_id
    )
    registry.set_version_tags(NAME, mv.version, {"artifact_sha256": directory_sha256(local)})
    return str(mv.version)


def clone_version(registry: ModelRegistry, version: str = "1", edit=None) -> str:
    """Re-upload a version's artifact as a new version (optionally edited first)."""
    mlflow = registry.fluent()
    source = registry.client.get_model_version(NAME, version).source
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp))
        if edit:
            edit(local)
        return register_dir(registry, local)
