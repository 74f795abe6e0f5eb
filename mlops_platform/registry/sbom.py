"""The CycloneDX SBOM of the software that trains a model (no Dagster, no network).

Built from the running interpreter's installed distributions, so a model version names the
exact packages that produced it. No timestamp or serial number: the same environment gives the
same bytes, and so the same `sbom_sha256` on every version it trained. (`make sbom` writes the
SBOM of the *locked* runtime dependencies with the official `cyclonedx-py`, for the release.)
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sys

from mlops_platform.model.tags import SBOM_SHA256

SBOM_ARTIFACT = "sbom/environment.cdx.json"
SBOM_TAG = SBOM_SHA256


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def environment_sbom() -> tuple[str, str]:
    """(CycloneDX 1.6 JSON text, its SHA-256) of this process's Python environment."""
    from importlib.metadata import distributions, version

    components = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        key = _normalise(name)
        purl = f"pkg:pypi/{key}@{dist.version}"
        component = {
            "type": "library",
            "bom-ref": purl,
            "name": key,
            "version": dist.version,
            "purl": purl,
        }
        license_ = dist.metadata.get("License-Expression") or ""
        if license_:
            component["licenses"] = [{"expression": license_}]
        components[key] = component
    tool = {"type": "library", "name": "mlops-platform", "version": version("mlops_platform")}
    project = components.pop("mlops-platform", None)
    if project:
        project["type"] = "application"
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {
            "component": project
            or {"type": "application", "bom-ref": "mlops-platform", "name": "mlops-platform"},
            "tools": {"components": [tool]},
            "properties": [
                {"name": "python", "value": sys.version.split()[0]},
                {"name": "platform", "value": sys.platform},
            ],
        },
        "components": [components[k] for k in sorted(components)],
    }
    text = json.dumps(bom, indent=1, sort_keys=True)
    return text, hashlib.sha256(text.encode()).hexdigest()
