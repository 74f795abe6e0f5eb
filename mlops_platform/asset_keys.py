"""Asset keys, groups, owners and tags of the platform's assets, built in one place.

A model spec's stages are the assets `<spec>/<stage>` (`<spec>/features`, `.../model`,
`.../registry`, `.../scores`, `.../drift`, `.../performance`, `.../deploy_guard`): the asset
graph shows a key's last part, so each node names its stage. Every asset of a domain (its
sources, landed and published tables, and its specs' stages) sits in the domain's group, is owned
by the owners its declaration names and is tagged with the domain (and the spec and stage).
Stages never spell each other's keys: they call `stage_key`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from mlops_platform.domains import Domain, domain_for

if TYPE_CHECKING:  # typing only: specs import contracts, which import these keys
    from mlops_platform.specs import ModelSpec

FEATURES = "features"
MODEL = "model"
REGISTRY = "registry"
SCORES = "scores"
DRIFT = "drift"
PERFORMANCE = "performance"
GUARD = "deploy_guard"
STAGES = (FEATURES, MODEL, REGISTRY, SCORES, DRIFT, PERFORMANCE, GUARD)

#: tag keys on every asset
DOMAIN_TAG = "domain"
SPEC_TAG = "spec"
STAGE_TAG = "stage"
LAYER_TAG = "layer"
#: the layer of published (audited) tables
RAW_LAYER = "raw"


def stage_key(spec: ModelSpec | str, stage: str) -> dg.AssetKey:
    """The asset key of `spec`'s `stage` (a spec or its name)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; one of {', '.join(STAGES)}")
    return dg.AssetKey([spec if isinstance(spec, str) else spec.name, stage])


def domain_attributes(domain: Domain, layer: str | None = None) -> dict:
    """Group, owners and tags of a domain's assets (`layer` of its tables: source, landing,
    raw)."""
    tags = {DOMAIN_TAG: domain.name} | ({LAYER_TAG: layer} if layer else {})
    return {"group_name": domain.name, "owners": list(domain.owners), "tags": tags}


def stage_attributes(spec: ModelSpec, stage: str) -> dict:
    """Key, group, owners and tags of `spec`'s `stage`, for `@dg.asset(**...)`."""
    domain = domain_for(spec)
    attributes = domain_attributes(domain)
    attributes["tags"] |= {SPEC_TAG: spec.name, STAGE_TAG: stage}
    return {"key": stage_key(spec, stage), **attributes}
