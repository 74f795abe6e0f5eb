"""Where the platform keeps its local state, and which environment profile is active.

Everything the embedded defaults write (source database, warehouse, dlt state, Dagster home,
MLflow store) lives under one data directory, so a fresh clone stays clean and `rm -rf .data`
starts over. No heavy imports here: this module is read while the code location loads.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: "local" (SQLite source, DuckDB warehouse, files) or "production" (PostgreSQL everywhere).
PROFILES = ("local", "production")


def data_dir() -> Path:
    """The directory for generated local state (`MLOPS_DATA_DIR`, default `<repo>/.data`)."""
    path = Path(os.environ.get("MLOPS_DATA_DIR") or PROJECT_ROOT / ".data")
    path.mkdir(parents=True, exist_ok=True)
    return path


def active_profile() -> str:
    """The profile chosen by `MLOPS_PROFILE`; an unknown name is an error, not a guess."""
    profile = os.environ.get("MLOPS_PROFILE", "local").strip().lower()
    if profile not in PROFILES:
        raise ValueError(f"MLOPS_PROFILE={profile!r} is not one of {', '.join(PROFILES)}")
    return profile


def code_version() -> str:
    """The git commit of the code (with `-dirty` if changed), or `unknown` outside a checkout."""
    import subprocess

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def default_source_url(file_name: str) -> str:
    """A local source database: a SQLite file under the data dir (named by its domain)."""
    return f"sqlite:///{data_dir() / file_name}"
