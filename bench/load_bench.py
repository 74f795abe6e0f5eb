"""Benchmark: how long the code location takes to load (`dagster definitions validate`).

Target: under 5 s on these machines. Compared in the same run with loading bare `dagster`
(the floor no code location can beat). Prints the median of 3 runs and the ratio.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    home = tempfile.mkdtemp(prefix="dagster_home_")
    Path(home, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": home}
    validate = [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"]
    bare = [sys.executable, "-c", "import dagster"]
    location = statistics.median(timed(validate, env) for _ in range(3))
    floor = statistics.median(timed(bare, env) for _ in range(3))
    print(f"dagster definitions validate: {location:.2f} s (target < 5 s)")
    print(f"import dagster (floor):       {floor:.2f} s")
    print(f"ratio: {location / floor:.2f}x")


if __name__ == "__main__":
    main()
