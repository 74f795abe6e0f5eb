"""Reading the Grafana dashboard and Prometheus config in deploy/: which metric names their
PromQL queries use, and which series a /metrics page exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "mlops-serving.json"

#: PromQL words that are not metric names (aggregation modifiers, operators, set matching)
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "inf", "nan",
}  # fmt: skip
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads: identifiers that are not functions (followed by
    `(`), keywords, label names inside `{}`/`by (...)`, durations in `[]` or strings."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', " ", expr)  # strings (label values)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range durations ($__rate_interval included)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in _NAME.finditer(text):
        word = match.group(0)
        follows = text[match.end() :].lstrip()[:1]
        before = text[: match.start()]
        if follows == "(" or word.lower() in _KEYWORDS or before.endswith("$"):
            continue
        if re.search(r"[0-9.]$", before):  # the exponent of a number such as 1e-9
            continue
        names.add(word)
    return names


def dashboard_queries(path: Path = DASHBOARD) -> list[str]:
    """Every PromQL expression of the dashboard's panels, and the metric of each variable
    query (`label_values(metric{...}, label)`)."""
    dashboard = json.loads(path.read_text())
    exprs = []

    def walk(panels):
        for panel in panels:
            exprs.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, str) and query.startswith("label_values("):
            exprs.append(query.removeprefix("label_values(").rsplit(",", 1)[0])
    return exprs


def exported_series(metrics_text: str) -> set[str]:
    """Series names a /metrics page can carry, from its `# TYPE` lines (so a labelled metric
    that has not been observed yet still counts): a histogram's _bucket/_sum/_count, a
    counter's _total."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", metrics_text, flags=re.M):
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif kind == "counter" and not name.endswith("_total"):
            names.add(f"{name}_total")
    return names
