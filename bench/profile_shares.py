"""Shares of a py-spy speedscope profile's samples taken after `_profile_marker` (see
bench/increment_days.py), by function (inclusive: a sample counts once for every function on
its stack) and for a few named groups of the day increment.

    python bench/profile_shares.py profile.json [--top 60] [--under STEP_FUNCTION]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter


def days_samples(path: str) -> tuple[list[list[str]], list[str]]:
    data = json.load(open(path))
    frames = [
        f"{f['name']} ({f.get('file', '').split('site-packages/')[-1]}:{f.get('line', '')})"
        for f in data["shared"]["frames"]
    ]
    stacks: list[list[str]] = []
    for profile in data["profiles"]:
        samples = [[frames[i] for i in s] for s in profile["samples"]]
        last = max(
            (n for n, s in enumerate(samples) if any("_profile_marker" in f for f in s)), default=-1
        )
        stacks += samples[last + 1 :]
    return stacks, frames


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--under", default="", help="only samples with this text on the stack")
    args = parser.parse_args()
    stacks, _ = days_samples(args.profile)
    if args.under:
        stacks = [s for s in stacks if any(args.under in f for f in s)]
    total = len(stacks)
    inclusive: Counter = Counter()
    for stack in stacks:
        for frame in set(stack):
            inclusive[frame] += 1
    print(f"{total} samples")
    for frame, n in inclusive.most_common(args.top):
        print(f"{100 * n / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
