"""MLflow tracking and registry operations (no Dagster).

Models are serialised with skops, trusting exactly the reviewed types (`artifact.py`, no pickle
fallback). Each version records the SHA-256 of its whole model directory (`artifact_sha256`)
and the CycloneDX SBOM of the software that trained it (`sbom_sha256`). Every load downloads the
artifact, recomputes the digest, checks the MLmodel (no `code:`, no escaping paths or symlinks)
and the pipeline's signature (`signing.py`), and only then deserialises the skops file itself:
nothing from an artifact is imported or run before it is verified.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from mlops_platform.model.tags import ARTIFACT_SHA256, SIGNATURE
from mlops_platform.registry.artifact import (
    REVIEWED_TRUSTED_TYPES,
    UnsafeArtifactError,
    UntrustedTypesError,
    check_model_dir,
    load_skops_model,
)
from mlops_platform.registry.sbom import SBOM_ARTIFACT, SBOM_TAG, environment_sbom

__all__ = ["REVIEWED_TRUSTED_TYPES", "UnsafeArtifactError", "UntrustedTypesError"]

#: Verified models kept in this process (`ModelRegistry.verified_model`), oldest use first.
_VERIFIED: dict[tuple, Any] = {}
VERIFIED_MODELS = 3

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous_champion"
MLFLOW_QUIET = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "MLFLOW_UV_AUTO_DETECT": "false",
}


class TamperedArtifactError(RuntimeError):
    """The artifact on disk is not the one that was registered."""


def directory_sha256(path: str | os.PathLike) -> str:
    """SHA-256 over every file of a directory: relative path and content, in sorted order."""
    root = Path(path)
    files = []
    for folder, dirs, names in os.walk(root):  # never follows symlinks
        for name in dirs + names:
            if Path(folder, name).is_symlink():
                raise UnsafeArtifactError(
                    f"artifact contains a symlink: {Path(folder, name).relative_to(root)}"
                )
        files += [Path(folder, name) for name in names]
    digest = hashlib.sha256()
    for file in sorted(files):
        digest.update(str(file.relative_to(root)).encode() + b"\0")
        digest.update(file.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def conda_env(pip_requirements: list[str]) -> dict:
    """The model's environment as MLflow records it (conda.yaml, python_env.yaml,
    requirements.txt): this Python and exactly these pip requirements."""
    import platform

    return {
        "name": "mlflow-env",
        "channels": ["conda-forge"],
        "dependencies": [f"python={platform.python_version()}", "pip", {"pip": pip_requirements}],
    }


def untrusted_types(model: Any) -> list[str]:
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


class ModelRegistry:
    """One MLflow tracking server/registry, addressed by URI; artifacts under `artifact_root`."""

    def __init__(self, tracking_uri: str, artifact_root: str) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        # MLflow's own switches (documented environment variables), before it is imported:
        # no progress bars; notices (a new store's migrations) at WARNING and above; and no uv
        # project detection: every version states its requirements (`log_model_version`), so
        # MLflow neither infers them nor copies the repository's uv.lock into each model.
        for name, value in MLFLOW_QUIET.items():
            os.environ.setdefault(name, value)

    def fluent(self):
        """The `mlflow` module pointed at this registry (for runs: `start_run`, `log_*`)."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        return mlflow

    @property
    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)

    def experiment_id(self, name: str) -> str:
        from mlops_platform.registry.mlflow_ui import ensure_experiment_tags, experiment_tags

        mlflow = self.fluent()
        found = mlflow.get_experiment_by_name(name)
        if found is not None:
            ensure_experiment_tags(self.client, found)  # made before the UI conventions
            return found.experiment_id
        location = (
            Path(self.artifact_root).resolve().as_uri()
            if "://" not in self.artifact_root
            and not self.artifact_root.startswith("mlflow-artifacts:")  # proxied by the server
            else self.artifact_root
        )
        return mlflow.create_experiment(
            name, artifact_location=f"{location}/{name}", tags=experiment_tags(name)
        )

    # -- versions ----------------------------------------------------------------------------
    def log_model_version(
        self,
        model_name: str,
        model: Any,
        input_example,
        prediction_example,
        pip_requirements: list[str],
        predict_fn: str = "predict",
    ) -> tuple[str, str]:
        """Log `model` to the active run and register it; returns (version, artifact SHA-256)."""
        mlflow = self.fluent()
        from mlflow.models import infer_signature

        found = untrusted_types(model)
        unreviewed = sorted(set(found) - set(REVIEWED_TRUSTED_TYPES))
        if unreviewed:
            raise UntrustedTypesError(
                f"model contains types not reviewed for skops loading: {unreviewed}"
            )
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="skops",
            skops_trusted_types=found,
            signature=infer_signature(input_example, prediction_example),
            input_example=input_example,
            # The environment stated, not inferred: these requirements, on this Python.
            conda_env=conda_env(pip_requirements),
            # What `mlflow models serve` and pyfunc clients get: class probabilities for a
            # classifier, the same reply our /invocations gives.
            pyfunc_predict_fn=predict_fn,
        )
        registered = self._register(model_name, info)
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=tmp)
            sha = directory_sha256(local)
        version = str(registered.version)
        self.client.set_model_version_tag(model_name, version, ARTIFACT_SHA256, sha)
        # The exact software that trained this version, beside it (and its digest on it).
        sbom, sbom_sha = environment_sbom()
        mlflow.log_text(sbom, SBOM_ARTIFACT)
        mlflow.set_tag(SBOM_TAG, sbom_sha)
        self.client.set_model_version_tag(model_name, version, SBOM_TAG, sbom_sha)
        return version, sha

    def _register(self, model_name: str, info):
        """A new version of `model_name` from a logged model (the registered model made on
        first use), through the client: the same records as `registered_model_name=`,
        without MLflow printing to stderr."""
        from mlflow.exceptions import MlflowException

        client = self.client
        try:
            client.create_registered_model(model_name)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        return client.create_model_version(
            model_name, source=info.model_uri, run_id=info.run_id, model_id=info.model_id
        )

    def version_tags(self, model_name: str, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(model_name, version).tags)

    def set_version_tags(self, model_name: str, version: str, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(model_name, version, key, str(value))

    def run_id_of(self, model_name: str, version: str) -> str:
        return self.client.get_model_version(model_name, version).run_id

    def all_version_tags(self, model_name: str) -> dict[str, dict[str, str]]:
        """Every version's tags, by version number, in one registry search (not one read
        per version)."""
        found = self.client.search_model_versions(f"name = '{model_name}'")
        return {str(v.version): dict(v.tags) for v in found}

    def latest_version(self, model_name: str) -> str | None:
        found = self.client.search_model_versions(f"name = '{model_name}'")
        return str(max(int(v.version) for v in found)) if found else None

    def alias_version(self, model_name: str, alias: str) -> str | None:
        """The version an alias points to, or None when the alias (or the model) is absent."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(model_name, alias).version)
        except MlflowException as exc:
            if exc.error_code in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"):
                return None
            raise

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(model_name, alias, version)

    def delete_alias(self, model_name: str, alias: str) -> None:
        self.client.delete_registered_model_alias(model_name, alias)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    # -- loading -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def verified_download(self, model_name: str, version: str, *, signed: bool = True):
        """Download a version into a temporary directory and verify it, in this order: the
        digest recorded at registration, the layout (no `code:`, no escaping paths or
        symlinks), and (if `signed`) the pipeline's signature over artifact + gate result.
        Yields (directory, signed gate record or None); nothing in it has been imported."""
        mlflow = self.fluent()

        mv = self.client.get_model_version(model_name, version)
        expected = mv.tags.get(ARTIFACT_SHA256)
        if not expected:
            raise TamperedArtifactError(
                f"{model_name} v{version} has no recorded artifact_sha256: refusing to load"
            )
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=tmp))
            actual = directory_sha256(local)
            if actual != expected:
                raise TamperedArtifactError(
                    f"{model_name} v{version}: artifact SHA-256 {actual} does not match the "
                    f"registered {expected}; refusing to load"
                )
            try:
                check_model_dir(local)
            except (UnsafeArtifactError, UntrustedTypesError) as exc:
                raise type(exc)(f"{model_name} v{version}: {exc}; refusing to load") from None
            record = None
            if signed:
                from mlops_platform.registry.signing import verify_signature

                record = verify_signature(self, model_name, version, local)
            yield local, record

    def load_verified(self, model_name: str, version: str, *, signed: bool = True) -> Any:
        """Verify (`verified_download`), then deserialise the skops file with the reviewed
        types. `signed=False` is for the gate itself, which evaluates a version before it is
        signed; serving and promotion always require the signature."""
        with self.verified_download(model_name, version, signed=signed) as (local, _):
            return load_skops_model(local)

    def verified_model(self, model_name: str, version: str) -> Any:
        """`load_verified`, once per process for a version: kept while the registry still
        records the same artifact digest and signature for it (a version number re-used after a
        registry reset, or re-signed, is verified and loaded again). The daily steps (scoring,
        the deploy guard's two versions, the monitoring references) run in one process in the
        replay and on a long-lived Celery worker; each verified and deserialised the same
        versions every day. At most `VERIFIED_MODELS` versions are kept (champion, previous,
        challenger), the least recently used dropped first."""
        tags = self.version_tags(model_name, version)
        identity = (tags.get(ARTIFACT_SHA256), tags.get(SIGNATURE))
        key = (self.tracking_uri, model_name, version, identity)
        model = _VERIFIED.pop(key, None)
        if model is None:
            model = self.load_verified(model_name, version)
        _VERIFIED[key] = model  # (re)inserted last: the most recently used
        while len(_VERIFIED) > VERIFIED_MODELS:
            del _VERIFIED[next(iter(_VERIFIED))]
        return model
