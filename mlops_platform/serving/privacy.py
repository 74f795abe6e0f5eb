"""Which logged columns identify someone, and the key their hashes are made with.

`hashed_columns` is the one place the prediction log asks which columns to hash: every column
the contracts classify (identifier, quasi-identifier, personal: `contracts/classification.py`),
plus any extra named in the setting `MLOPS_SERVING_HASH_COLUMNS`.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path


def hashed_columns(configured: str, logged: list[str]) -> frozenset[str]:
    """Columns of the log to store as keyed hashes (only those the log has)."""
    from mlops_platform.contracts.classification import classified_columns

    wanted = {c.strip() for c in configured.split(",") if c.strip()} | set(classified_columns())
    return frozenset(c for c in logged if c in wanted)


def hash_key(configured: str, key_file: Path) -> bytes:
    """The configured key, or one generated on first use and kept in `key_file` (mode 0600),
    shared by every replica that shares the data directory."""
    if configured:
        return configured.encode()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(100):  # another replica may be writing it this instant
            key = key_file.read_bytes().strip()
            if key:
                return key
            time.sleep(0.02)
        raise RuntimeError(f"hash key file {key_file} is empty") from None
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_hex(32))
    return key_file.read_bytes().strip()
