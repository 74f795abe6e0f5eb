"""Evidently reports people can read: titled, stored once, linked (no Dagster)."""

from __future__ import annotations

import html
from pathlib import Path

from mlops_platform.settings import data_dir


def report_title(
    model: str, version: str, start, end, reference_start, reference_end, window_days: int
) -> str:
    return (
        f"{model} v{version} — drift of {start}..{end} ({window_days} days) against the "
        f"reference {reference_start}..{reference_end} (v{version}'s training data)"
    )


def save_report(snapshot, title: str, path: Path) -> Path:
    """The report's HTML with `title` as its page title and heading, written once to `path`
    (the asset links it; MLflow gets the path as a tag, not a second copy)."""
    page = snapshot.get_html_str(as_iframe=False)
    escaped = html.escape(title)
    heading = f'<h1 style="font-family:sans-serif;font-size:1.3em;margin:12px">{escaped}</h1>'
    if "<title>" in page:
        start, end = page.index("<title>"), page.index("</title>")
        page = page[: start + len("<title>")] + escaped + page[end:]
    else:
        page = page.replace("<head>", f"<head><title>{escaped}</title>", 1)
    page = page.replace("<body>", f"<body>{heading}", 1) if "<body>" in page else heading + page
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def report_path(model: str, day, version: str) -> Path:
    return data_dir() / "reports" / model / f"drift-{day}-v{version}.html"
