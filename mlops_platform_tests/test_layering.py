"""The import graph of `mlops_platform`, read from the source with `ast`: no cycles (imports
inside functions count: a lazy import hides a cycle, it does not remove it), and the layers
import downward only. Imports under `if TYPE_CHECKING:` never run and are left out."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

import mlops_platform

ROOT = Path(mlops_platform.__file__).parent
PACKAGE = "mlops_platform"

#: The stage packages: each imports the model layer (and those below it), never the reverse.
STAGES = {
    "alerting", "contracts", "evaluation", "features", "ingestion", "loop", "monitoring",
    "registry", "scoring", "serving", "training",
}  # fmt: skip


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every module name imported anywhere in `tree` (absolute, relative made absolute)."""
    found: set[str] = set()
    here = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # `from pkg import module` imports the module too.
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


@cache
def graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module -> the mlops_platform modules it imports, module -> outside top-level names)."""
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    internal: dict[str, set[str]] = {}
    external: dict[str, set[str]] = {}
    for module, path in files.items():
        names = _imports(ast.parse(path.read_text()), module, path.name == "__init__.py")
        internal[module] = {n for n in names if n in files and n != module}
        external[module] = {n.split(".")[0] for n in names if n.split(".")[0] != PACKAGE}
    return internal, external


def cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges.get(node, ()):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def package_graph() -> dict[str, set[str]]:
    internal, _ = graph()
    edges: dict[str, set[str]] = {}
    for module, imported in internal.items():
        edges.setdefault(_package(module), set()).update(
            _package(m) for m in imported if _package(m) != _package(module)
        )
    return edges


def reachable(start: str) -> set[str]:
    internal, _ = graph()
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(internal[module])
    return seen


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [{"a", "b"}]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [{"a", "b", "c"}]),
        ({"a": {"a"}}, []),
    ],
)
def test_cycle_finder(edges, expected):
    assert cycles(edges) == expected


def test_function_level_and_relative_imports_are_read():
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "if TYPE_CHECKING:\n    from mlops_platform.typing_only import X\n"
        "def f():\n    from mlops_platform.hidden import y\n"
    )
    names = _imports(ast.parse(source), "mlops_platform.pkg.mod", is_package=False)
    assert {"mlops_platform.pkg.sibling", "mlops_platform.hidden"} <= names
    assert "mlops_platform.typing_only" not in names


def test_no_module_imports_itself_back():
    internal, _ = graph()
    assert len(internal) > 100  # the whole package was read
    assert cycles(internal) == [], "import cycles between modules"


def test_no_package_cycles():
    """Packages import each other one way only (ingestion lands, contracts audit what landed:
    contracts may read ingestion's names, never the reverse)."""
    edges = package_graph()
    assert "ingestion" in edges["contracts"] and "contracts" not in edges["ingestion"]
    assert cycles(edges) == [], "package cycles"


def test_training_and_evaluation_do_not_import_each_other():
    edges = package_graph()
    assert "evaluation" not in edges["training"]
    assert "training" not in edges["evaluation"]


def test_stages_before_serving_do_not_import_it():
    """The gate times a model through the scorer serving uses; that scorer is in the model
    layer, so evaluation (and whatever runs before a model is served) imports downward."""
    edges = package_graph()
    for stage in ("contracts", "evaluation", "features", "ingestion", "registry", "training"):
        assert "serving" not in edges[stage], stage
    internal, _ = graph()
    assert "mlops_platform.model.scorer" in internal["mlops_platform.evaluation.gate"]
    assert "mlops_platform.model.scorer" in internal["mlops_platform.serving.manager"]


def test_the_model_layer_imports_nothing_above_it():
    internal, external = graph()
    model = [m for m in internal if _package(m) == "model"]
    assert {"mlops_platform.model.version", "mlops_platform.model.split"} <= set(model)
    for module in model:
        above = {m for m in internal[module] if _package(m) != "model"}
        assert not above, f"{module} imports {sorted(above)}"
        assert "dagster" not in external[module]


def test_stages_read_the_model_contract_from_the_model_layer():
    internal, _ = graph()
    for stage in ("training", "evaluation", "scoring", "monitoring"):
        imported = set().union(*(v for k, v in internal.items() if _package(k) == stage))
        assert any(_package(m) == "model" for m in imported), stage
        assert "mlops_platform.features.build" not in imported, stage


def test_serving_modules_never_import_dagster():
    """The serving process reads the registry, not Dagster: no serving module imports it, and
    the scorer (the model's serving path, which the gate also times) reaches it by no route."""
    internal, external = graph()
    for module in (m for m in internal if _package(m) == "serving"):
        assert "dagster" not in external[module], module
    via = sorted(m for m in reachable("mlops_platform.model.scorer") if "dagster" in external[m])
    assert not via, f"the scorer reaches dagster through {via}"


def test_serving_never_reaches_dagster_through_another_module():
    """Not through the warehouse or the profile either: serving takes plain stores
    (`mlops_platform.stores`), and the Dagster resources live in modules it never imports."""
    internal, external = graph()
    assert "mlops_platform.stores" in reachable("mlops_platform.serving.app")
    for module in (m for m in internal if _package(m) == "serving"):
        via = sorted(m for m in reachable(module) if "dagster" in external[m])
        assert not via, f"{module} reaches dagster through {via}"


def _probe(script: str, env: dict | None = None, cwd=None) -> str:
    """Run `script` in a fresh interpreter; its last line of output (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=cwd, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_a_serving_process_runs_without_dagster_loaded():
    """What the graph promises, checked in a real interpreter: the app and its stores load and
    Dagster is not among the imported modules."""
    script = (
        "import sys\n"
        "from mlops_platform.serving.app import create_app\n"
        "from mlops_platform.stores import plain_stores\n"
        "plain_stores('local')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))\n"
    )
    assert _probe(script) == "[]"


def test_loading_the_code_location_leaves_dlt_to_the_runs_that_load():
    """Every run's own process loads the code location before its first step: dlt (about
    0.4-0.9 s of CPU to import and configure) is imported by the landing step that uses it,
    not at load. A real interpreter, both profiles' definitions."""
    script = (
        "import sys\n"
        "from mlops_platform.definitions import build_definitions\n"
        "from mlops_platform.profiles import production_resources\n"
        "build_definitions().resolve_asset_graph()\n"
        "production_resources()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dlt', 'dagster_dlt')))\n"
    )
    assert _probe(script) == "[]"


def test_importing_the_platform_batches_a_ranged_steps_materializations(tmp_path):
    """`DAGSTER_EVENT_BATCH_SIZE` defaults to 1000 (an operator's own value is kept): a ranged
    run's 28 materializations (and the 28 planned at its start) reach the event log as one
    batch each, and every partition is still recorded. With 0, no batch. (A real instance;
    the batches it is handed are counted.)"""
    probe = (
        "import os, mlops_platform\n"
        "import dagster as dg\n"
        "days = dg.DailyPartitionsDefinition(start_date='2013-01-01', end_date='2013-02-01')\n"
        "@dg.asset(partitions_def=days, backfill_policy=dg.BackfillPolicy.single_run())\n"
        "def ranged() -> None: pass\n"
        "job = dg.Definitions(assets=[ranged]).get_implicit_global_asset_job_def()\n"
        "batches = []\n"
        "with dg.DagsterInstance.ephemeral() as instance:\n"
        "    log = instance.event_log_storage\n"
        "    store = log.store_event_batch\n"
        "    def spy(events):\n"
        "        kinds = {e.dagster_event.event_type_value for e in events}\n"
        "        batches.append(f'{len(events)} {\"/\".join(sorted(kinds))}')\n"
        "        store(events)\n"
        "    log.store_event_batch = spy\n"
        "    result = job.execute_in_process(instance=instance, tags={\n"
        "        'dagster/asset_partition_range_start': '2013-01-02',\n"
        "        'dagster/asset_partition_range_end': '2013-01-29'})\n"
        "    done = instance.get_materialized_partitions(dg.AssetKey('ranged'))\n"
        "print(os.environ['DAGSTER_EVENT_BATCH_SIZE'], result.success, len(done), batches)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_EVENT_BATCH_SIZE"}

    def seen(**extra) -> str:
        return _probe(probe, env={**env, **extra}, cwd=tmp_path)

    assert seen() == (
        "1000 True 28 ['28 ASSET_MATERIALIZATION_PLANNED', '28 ASSET_MATERIALIZATION']"
    )
    assert seen(DAGSTER_EVENT_BATCH_SIZE="0") == "0 True 28 []"


def test_importing_the_platform_shortens_openmp_spinning():
    """Set before scikit-learn loads OpenMP (a fresh interpreter); an operator's own
    GOMP_SPINCOUNT or OMP_WAIT_POLICY is kept and then nothing is added."""
    probe = (
        "import os, mlops_platform; "
        "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}

    def seen(**extra) -> str:
        return _probe(probe, env={**env, **extra})

    assert seen() == "1000 None"
    assert seen(GOMP_SPINCOUNT="50") == "50 None"
    assert seen(OMP_WAIT_POLICY="ACTIVE") == "None ACTIVE"
