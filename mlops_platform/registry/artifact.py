"""What a downloaded model directory may contain, and loading it without running its code.

MLflow's own loaders put an MLmodel's `code:` directory first on `sys.path` before importing
anything (PITFALLS), so an artifact could ship a module named like a library and have it run on
load. Here the MLmodel is only parsed (`yaml.safe_load`), checked, and the skops file is
deserialised directly with the reviewed trusted types: nothing from the artifact is imported.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

#: Types skops does not trust by default that our pipelines contain, reviewed by hand:
#: HistGradientBoosting's tree predictor (plain arrays), and the `check_array` function that
#: FunctionTransformer-like defaults reference through functools.partial.
REVIEWED_TRUSTED_TYPES = [
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]

#: MLmodel keys (in any flavor) that name a file or directory inside the artifact.
PATH_KEYS = ("pickled_model", "model_path", "data", "artifacts", "model_code_path")


class UnsafeArtifactError(RuntimeError):
    """The artifact asks for something that could run code or reach outside its directory."""


class UntrustedTypesError(RuntimeError):
    """A model contains types nobody has reviewed for safe deserialisation."""


def _inside(root: Path, relative: str, where: str) -> Path:
    pure = PurePosixPath(relative)
    if pure.is_absolute() or Path(relative).is_absolute() or ".." in pure.parts:
        raise UnsafeArtifactError(f"{where}: path {relative!r} is absolute or leaves the artifact")
    resolved = (root / relative).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise UnsafeArtifactError(f"{where}: path {relative!r} resolves outside the artifact")
    return resolved


def check_model_dir(root: str | os.PathLike) -> dict:
    """Refuse symlinks, `code:` paths and escaping paths; return the sklearn flavor config."""
    import yaml

    root = Path(root)
    for path in root.rglob("*"):
        if path.is_symlink():
            raise UnsafeArtifactError(
                f"artifact contains a symlink {path.relative_to(root)} -> {os.readlink(path)}"
            )
    mlmodel = root / "MLmodel"
    if not mlmodel.is_file():
        raise UnsafeArtifactError("artifact has no MLmodel file")
    try:
        config = yaml.safe_load(mlmodel.read_text())
    except yaml.YAMLError as exc:
        raise UnsafeArtifactError(f"MLmodel is not valid YAML: {exc}") from None
    flavors = config.get("flavors") if isinstance(config, dict) else None
    if not isinstance(flavors, dict) or not isinstance(flavors.get("sklearn"), dict):
        raise UnsafeArtifactError("MLmodel has no sklearn flavor")
    if config.get("code"):
        raise UnsafeArtifactError(f"MLmodel ships code ({config['code']!r}): refused")
    for name, flavor in flavors.items():
        if not isinstance(flavor, dict):
            raise UnsafeArtifactError(f"MLmodel flavor {name!r} is not a mapping")
        if flavor.get("code"):
            raise UnsafeArtifactError(
                f"MLmodel flavor {name!r} ships code ({flavor['code']!r}): refused"
            )
        for key in PATH_KEYS:
            value = flavor.get(key)
            if isinstance(value, str):
                _inside(root, value, f"MLmodel flavors.{name}.{key}")
    sklearn = flavors["sklearn"]
    trusted = sklearn.get("skops_trusted_types") or []
    if sklearn.get("serialization_format") != "skops":
        raise UntrustedTypesError(
            f"model is serialised as {sklearn.get('serialization_format')!r}, not skops"
        )
    unreviewed = (
        sorted(set(trusted) - set(REVIEWED_TRUSTED_TYPES)) if isinstance(trusted, list) else trusted
    )
    if not isinstance(trusted, list) or unreviewed:
        raise UntrustedTypesError(f"model trusts types nobody reviewed: {unreviewed}")
    if not isinstance(sklearn.get("pickled_model"), str):
        raise UnsafeArtifactError("MLmodel names no model file (flavors.sklearn.pickled_model)")
    return sklearn


def load_skops_model(root: str | os.PathLike) -> Any:
    """Check the directory, then deserialise its skops file with the reviewed types only."""
    import skops.io

    sklearn = check_model_dir(root)
    path = _inside(Path(root), sklearn["pickled_model"], "MLmodel flavors.sklearn.pickled_model")
    # The allow-list is ours, not the artifact's: the MLmodel's own list was checked above to
    # be a subset, and anything else in the file makes skops refuse.
    return skops.io.load(path, trusted=REVIEWED_TRUSTED_TYPES)
