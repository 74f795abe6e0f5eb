"""Domains: what the platform knows about a team's data, declared rather than coded.

Each domain is a folder `domains/<domain>/` holding `domain.yaml` (its declaration, validated by
`schema.Domain`), its model specs (every other `<spec>.yaml` there, each naming the domain) and
`features.py` (`FEATURE_FUNCTIONS`, the raw columns each reads in `FEATURE_INPUTS`, and
`base_frame(tables)`, the one-row-per-entity frame they start from). More folders of domains
can be named in `MLOPS_DOMAIN_PATH` (directories separated by `os.pathsep`, each holding
domain folders).

Which specs the code location builds pipelines for: `MLOPS_MODEL_SPECS` (comma-separated spec
names, found in any domain folder); unset, the `default_specs` of each domain named in
`MLOPS_DOMAINS` (comma-separated); that unset too, of the first declared domain in name order.
The enabled domains (whose raw tables are ingested) are those of the enabled specs.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import yaml
from pydantic import ValidationError

from mlops_platform.domains.schema import Domain, Partitions
from mlops_platform.domains.validation import load_yaml, readable

__all__ = [
    "DECLARATION",
    "DOMAINS_DIR",
    "Domain",
    "Partitions",
    "declared_domains",
    "domain_for",
    "enabled_domain_names",
    "enabled_domains",
    "enabled_spec_names",
    "spec_files",
    "features_module",
    "load_domain",
]

DOMAINS_DIR = Path(__file__).parent
DECLARATION = "domain.yaml"
#: Domains loaded from a path outside the declared folders (a test's, a user's), by name.
_BY_PATH: dict[str, Domain] = {}


def domain_roots() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("MLOPS_DOMAIN_PATH", "").split(os.pathsep) if p]
    return [DOMAINS_DIR, *extra]


def declared_domains() -> dict[str, Path]:
    """{domain name: its folder} of every declared domain (folder name = domain name)."""
    found: dict[str, Path] = {}
    for root in domain_roots():
        if not root.is_dir():
            raise FileNotFoundError(f"MLOPS_DOMAIN_PATH names {root}, which is not a directory")
        for declaration in sorted(root.glob(f"*/{DECLARATION}")):
            folder = declaration.parent
            if folder.name in found and found[folder.name] != folder:
                raise ValueError(
                    f"domain {folder.name!r} is declared twice: {found[folder.name]} and {folder}"
                )
            found[folder.name] = folder
    return dict(sorted(found.items()))


def spec_files() -> dict[str, Path]:
    """{spec name: its file} of every model spec in the declared domains' folders."""
    found: dict[str, Path] = {}
    for folder in declared_domains().values():
        for path in sorted(folder.glob("*.yaml")):
            if path.name == DECLARATION:
                continue
            if path.stem in found:
                raise ValueError(
                    f"model spec {path.stem!r} is in two domains: {found[path.stem]} and {path}"
                )
            found[path.stem] = path
    return found


def _names(variable: str) -> list[str]:
    return [n.strip() for n in os.environ.get(variable, "").split(",") if n.strip()]


def enabled_spec_names() -> list[str]:
    """`MLOPS_MODEL_SPECS`, or else the `default_specs` of each domain in `MLOPS_DOMAINS` (unset:
    the first declared domain in name order)."""
    configured = _names("MLOPS_MODEL_SPECS")
    if configured:
        return configured
    declared = declared_domains()
    names = _names("MLOPS_DOMAINS") or list(declared)[:1]
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise ValueError(f"MLOPS_DOMAINS names {unknown}; declared: {', '.join(declared)}")
    return [spec for name in names for spec in load_domain(name).default_specs]


def enabled_domain_names() -> list[str]:
    """The domains of the enabled specs (their folders), else `MLOPS_DOMAINS` or the first
    declared domain: the domains whose ingestion and contracts the code location builds."""
    files = spec_files()
    found = [files[n].parent.name for n in enabled_spec_names() if n in files]
    return list(dict.fromkeys(found or _names("MLOPS_DOMAINS") or list(declared_domains())[:1]))


def enabled_domains() -> list[Domain]:
    return [load_domain(name) for name in enabled_domain_names()]


def read_declaration(path: Path) -> Domain:
    """A declaration file, validated; errors name the file and the field."""
    if not path.exists():
        raise FileNotFoundError(f"no domain declaration {path}")
    try:
        raw = load_yaml(path)
        if not isinstance(raw, dict):
            raise ValueError(f"expected a mapping of fields, got {type(raw).__name__}")
        domain = Domain.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"invalid domain declaration {path}:{readable(exc, [Domain])}") from None
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"invalid domain declaration {path}: {exc}") from None
    if domain.name != path.parent.name:
        raise ValueError(
            f"invalid domain declaration {path}: name {domain.name!r} differs from its folder "
            f"{path.parent.name!r}"
        )
    domain._folder = path.parent
    return domain


@cache
def _read_cached(path: str, modified: float) -> Domain:
    return read_declaration(Path(path))


def _load_declared(name: str) -> Domain:
    folders = declared_domains()
    if name not in folders:
        raise KeyError(f"no domain {name!r}; declared: {', '.join(folders) or 'none'}")
    path = folders[name] / DECLARATION
    return _read_cached(str(path), path.stat().st_mtime)


def load_domain(name_or_path: str | Path) -> Domain:
    """A domain by name (a declared folder) or by the path of its folder or declaration."""
    text = str(name_or_path)
    if os.sep in text or text.endswith(".yaml"):
        path = Path(text)
        path = (path if path.suffix else path / DECLARATION).resolve()
        declared = declared_domains().get(path.parent.name)
        if declared is not None and declared.resolve() == path.parent:
            return _load_declared(path.parent.name)
        domain = read_declaration(path)
        _BY_PATH[domain.name] = domain
        return domain
    # A domain read by path answers to its name only where no declared domain has that name:
    # a copy read from elsewhere (a test's folder) never shadows the declared one.
    if text in _BY_PATH and text not in declared_domains():
        return _BY_PATH[text]
    return _load_declared(text)


def domain_for(spec) -> Domain:  # noqa: ANN001 - a ModelSpec (specs imports this module)
    """The domain a model spec belongs to (`domain:` in the spec)."""
    return load_domain(spec.domain)


def features_module(domain: Domain) -> ModuleType:
    """The domain's `features.py`: `FEATURE_FUNCTIONS`, `FEATURE_INPUTS` and `base_frame`."""
    folder = domain.folder
    if folder is None:
        raise ValueError(f"domain {domain.name!r} was not read from a folder")
    if folder.parent == DOMAINS_DIR:
        return importlib.import_module(f"{__name__}.{domain.name}.features")
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
    name = f"mlops_domain_{domain.name}_{digest}_features"
    if name in sys.modules:
        return sys.modules[name]
    path = folder / "features.py"
    if not path.exists():
        raise FileNotFoundError(f"domain {domain.name!r} has no {path}")
    found = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(found)
    sys.modules[name] = module
    found.loader.exec_module(module)
    return module
