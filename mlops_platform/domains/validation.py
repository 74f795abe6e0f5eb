"""Reading a declaration or a spec file: YAML whose dates stay text until the schema reads
them (a bad date is then an error of its field, not of the YAML parser), and validation errors
as a person reads them: one line per problem, `field.path: what is wrong`, without pydantic's
echo of the whole input and its links, an unknown field with the nearest known name, a pattern
in words. No Dagster, no pandas."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError


class _Loader(yaml.SafeLoader):
    """SafeLoader without the timestamp resolver: `2023-13-01` stays a string for the schema."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(path: Path) -> object:
    """The YAML file at `path` (a syntax error names the file, line and column)."""
    with path.open() as stream:
        return yaml.load(stream, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


#: patterns of the schema in words (pydantic would print the regular expression)
PATTERN_WORDS = {
    r"^[a-z][a-z0-9_]*$": "lower-case letters, digits and _, starting with a letter",
    r"^(team:[A-Za-z0-9_-]+|[^@\s]+@[^@\s]+\.[^@\s]+)$": (
        "`team:<name>` (letters, digits, - and _) or an email address"
    ),
}


def field_names(models: Iterable[type[BaseModel]]) -> set[str]:
    """Every field name (and alias) of `models` and the models their fields hold."""
    seen: set[type[BaseModel]] = set()
    names: set[str] = set()
    todo = list(models)
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            names.add(info.alias or name)
            todo += [t for t in _models_in(info.annotation) if t not in seen]
    return names


def _models_in(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def _where(loc: tuple) -> str:
    parts = ""
    for part in loc:
        if isinstance(part, int):
            parts += f"[{part}]"
        else:
            parts += f".{part}" if parts else str(part)
    return parts


def _got(value: object) -> str:
    if isinstance(value, str | int | float | bool) or value is None:
        return f" (got {value!r})"
    return ""


def readable(exc: ValidationError, models: Iterable[type[BaseModel]]) -> str:
    """One line per error of `exc`: `field.path: message`."""
    known = sorted(field_names(models))
    lines = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if len(loc) > 2 and loc[0] == "sources" and loc[2] in ("sql", "rest"):
            loc = loc[:2] + loc[3:]  # the source's `kind` tag pydantic adds
        where = _where(loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            name = str(loc[-1])
            near = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
            hint = f"; did you mean {near[0]!r}?" if near and near[0] != name else ""
            lines.append(f"{where}: unknown field{hint}")
        elif kind == "missing":
            lines.append(f"{where}: required field missing")
        elif kind == "string_pattern_mismatch":
            pattern = error.get("ctx", {}).get("pattern", "")
            words = PATTERN_WORDS.get(pattern, f"the pattern {pattern}")
            lines.append(f"{where}: {error['input']!r} is not {words}")
        elif kind == "value_error":
            message = str(error.get("ctx", {}).get("error", error["msg"]))
            # A whole-file check names its fields itself, several problems joined by "; ".
            problems = message.split("; ") if not where else [message]
            lines += [f"{where}: {p}" if where else p for p in problems]
        else:
            lines.append(f"{where}: {error['msg']}{_got(error.get('input'))}")
    return "\n  ".join(["", *lines]) if len(lines) > 1 else " " + lines[0]
