"""Evidently reports people can read: titled, stored once, linked (no Dagster).

A page is Evidently's own standalone page (`Snapshot.get_html_str`), rendered here at half its
cost, with two differences:

- Evidently's 3.5 MB JavaScript bundle and its icon font are stored once per reports folder
  (`js/`, the layout of Evidently's own "folder" save mode) and referenced by a relative path,
  instead of being copied into every day's page (a page is ~1.4 MB instead of ~5 MB, and still
  opens from disk or from any copy of the folder);
- each widget is converted to plain data once, while the JSON is written: Evidently converts
  the drift table's per-column plots twice (`DashboardInfo.dict()` converts them inside the
  table, then `render_widgets` again for the page's `additional_graphs`), about 60% of the
  page's cost, and each `.dict()` copies the figures' lists and dicts before they are written.

The page's data is the same JSON Evidently writes (`test_monitoring` compares the two pages).
"""

from __future__ import annotations

import html
import json
import os
import shutil
import uuid
from pathlib import Path

from mlops_platform.settings import data_dir

#: Where a reports folder keeps the shared files its pages reference (relative to the pages).
SHARED = "js"


def report_title(
    model: str, version: str, start, end, reference_start, reference_end, window_days: int
) -> str:
    return (
        f"{model} v{version} — drift of {start}..{end} ({window_days} days) against the "
        f"reference {reference_start}..{reference_end} (v{version}'s training data)"
    )


def shared_files(folder: Path) -> tuple[str, str]:
    """Evidently's bundle and font in `folder/js/` (copied once per Evidently version), as the
    paths a page in `folder` references. Their modification time is refreshed with each page,
    so a retention that removes files by age removes them only with the last page using them."""
    import evidently
    from evidently.legacy.utils.dashboard import STATIC_PATH

    target = folder / SHARED
    target.mkdir(parents=True, exist_ok=True)
    names = {"index.js": f"evidently.{evidently.__version__}.js"}
    names["material-ui-icons.woff2"] = "material-ui-icons.woff2"
    for source, name in names.items():
        path = target / name
        original = Path(STATIC_PATH) / source
        if not path.is_file() or path.stat().st_size != original.stat().st_size:
            partial = path.with_name(f".{name}.{os.getpid()}")
            shutil.copyfile(original, partial)
            partial.replace(path)  # a page never references a half-written bundle
        else:
            os.utime(path)
    return f"{SHARED}/{names['index.js']}", f"{SHARED}/{names['material-ui-icons.woff2']}"


def page_data(snapshot) -> tuple[dict, dict]:
    """(dashboard, additional graphs): the data `Snapshot.get_html_str` embeds in its page
    (`evidently.core.metric_types.render_widgets` and `legacy.utils.dashboard`). Reads the
    snapshot's widgets as `get_html_str` does. The widgets stay Evidently's models: `render_page`
    writes each as its fields (what `.dict()` returns) while writing the JSON, instead of
    `.dict()` first copying every list and dict of the figures' data in Python (~60% of the
    page's cost, the JSON writer's C loop walking the same data once)."""
    from evidently.legacy.model.widget import AdditionalGraphInfo
    from evidently.legacy.renderers.html_widgets import group_widget

    widgets = [
        group_widget(title="", widgets=snapshot._widgets),  # noqa: SLF001 - as get_html_str
        *snapshot._tests_widgets,  # noqa: SLF001
    ]
    graphs: dict = {}

    def collect(widget) -> None:
        # `BaseWidgetInfo.get_additional_graphs`' order: its own, then its widgets' in turn.
        for graph in widget.additionalGraphs:
            graphs[graph.id] = graph.params if isinstance(graph, AdditionalGraphInfo) else graph
        for child in widget.widgets:
            collect(child)

    for widget in widgets:
        collect(widget)
    # The top-level widgets without their additional graphs, as `dashboard_info_to_json`.
    top = [{k: v for k, v in widget if k != "additionalGraphs"} for widget in widgets]
    return {"name": "Report", "widgets": top}, graphs


def _page_json(data) -> str:
    """`data` as JSON the way Evidently writes its page data (`NumpyEncoder`), with Evidently's
    models written as their fields in order (pydantic's `.dict()`, none of them excluding one)."""
    from evidently._pydantic_compat import BaseModel
    from evidently.legacy.utils import NumpyEncoder

    class Encoder(NumpyEncoder):
        def default(self, o):  # noqa: ANN001, ANN202 - json's own signature
            return dict(o) if isinstance(o, BaseModel) else super().default(o)

    return json.dumps(data, cls=Encoder)


def render_page(snapshot, title: str, bundle: str, font: str) -> str:
    """The snapshot's standalone page titled `title`, referencing Evidently's `bundle` and
    `font` (paths relative to the page) instead of embedding them."""
    from evidently.legacy.utils.dashboard import TemplateParams, file_html_template

    dashboard, graphs = page_data(snapshot)
    board = "metric_" + uuid.uuid4().hex
    params = TemplateParams(
        dashboard_id=board,
        dashboard_info=None,  # the data is embedded below, converted once
        additional_graphs={},
        embed_font=False,
        embed_lib=False,
        embed_data=False,
        font_file=font,
        include_js_files=[bundle],
    )
    data = f"""<script>
    var {board} = {_page_json(dashboard)};
    var additional_graphs_{board} = {_page_json(graphs)};
</script>"""
    page = file_html_template(params).replace("<!-- no embedded data -->", data, 1)
    # The title in the template's head (its first tag: before any data) and the heading before
    # the dashboard's root (named by this page's random id, so never matched inside the data).
    escaped = html.escape(title)
    heading = f'<h1 style="font-family:sans-serif;font-size:1.3em;margin:12px">{escaped}</h1>'
    root = f'<div id="root_{board}">'
    page = page.replace("<head>", f"<head><title>{escaped}</title>", 1)
    return page.replace(root, heading + root, 1)


def save_report(snapshot, title: str, path: Path) -> Path:
    """The report's page with `title` as its page title and heading, written once to `path`
    next to the folder's shared Evidently files (the asset links it; MLflow gets the path as a
    tag, not a second copy)."""
    bundle, font = shared_files(path.parent)
    path.write_text(render_page(snapshot, title, bundle, font), encoding="utf-8")
    return path


def report_path(model: str, day, version: str) -> Path:
    return data_dir() / "reports" / model / f"drift-{day}-v{version}.html"
