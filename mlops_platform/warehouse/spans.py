"""Ranges of days holding at most so many rows: how a feature build and a scoring step read a
large range a bounded piece at a time (no Dagster, no pandas)."""

from __future__ import annotations

import datetime as dt


def day_spans(
    days: list[tuple[dt.date, int]], since: dt.date | None, limit: int
) -> list[tuple[dt.date, dt.date | None]]:
    """Consecutive [start, end) ranges of days, each holding at most `limit` rows (`days`: each
    day with rows and its row count, in order; a single bigger day is a range of its own), from
    `since` (or the first day) on; the last one is open-ended (None), so together they cover
    every day from the start on."""
    out: list[tuple[dt.date, dt.date | None]] = []
    start, rows = (since or (days[0][0] if days else None)), 0
    if start is None:
        return out
    for day, count in days:
        if rows and rows + count > limit:
            out.append((start, day))
            start, rows = day, 0
        rows += count
    out.append((start, None))
    return out
