"""The package layout holds: no import cycle, api/ and web/ never import each other (only the
composition root, app.py, imports both), the capability packages never import the HTTP
adapters, and no SQL text sits in api/ or web/ (it belongs in a package's queries.py or use case).

The import graph comes from grimp, which reads every import statement, including those inside
functions and under TYPE_CHECKING: an import moved into a function to dodge a cycle is still a
cycle. The second half of the file tests the check itself on small synthetic packages."""

from __future__ import annotations

import ast
import importlib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grimp
import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "campuscard"
ADAPTERS = ("api", "web")  # the two HTTP adapters; neither may import the other
EDGE_LAYERS = (*ADAPTERS, "edge", "app")  # what the capability packages may not import
ROOT = "app"  # the composition root: the one module that imports both adapters

# A statement at the start of a string literal: keywords in capitals, as every query here is.
SQL_START = re.compile(
    r"""^[\s(]*(
        SELECT\s |
        INSERT\s+INTO\s |
        UPDATE\s+\S+\s+SET\s |
        DELETE\s+FROM\s |
        WITH\s+(RECURSIVE\s+)?\w+\s*(\([^)]*\)\s*)?AS\s*\(
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Finding:
    rule: str  # "cycle", "adapter import", "inward import", "sql"
    modules: tuple[str, ...]
    detail: str = ""

    def __str__(self) -> str:
        where = " -> ".join(self.modules)
        return f"{self.rule}: {where}" + (f" ({self.detail})" if self.detail else "")


def _layer(package: str, module: str) -> str:
    """The first segment below the package: 'api' for campuscard.api.routes.cards."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == package else ""


def import_cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """Every group of modules that import each other, directly or around a loop (the
    strongly connected components of more than one module, and modules importing themselves)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []
    counter = 0

    def edges(module: str) -> list[str]:
        return sorted(graph.find_modules_directly_imported_by(module))

    for start in sorted(graph.modules):
        if start in index:
            continue
        # iterative Tarjan: the graph is deep enough to trouble recursion limits
        work: list[tuple[str, Iterator[str]]] = [(start, iter(edges(start)))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges(child))))
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                group: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == module:
                        break
                if len(group) > 1 or module in graph.find_modules_directly_imported_by(module):
                    found.append(tuple(sorted(group)))
    return sorted(found)


def adapter_imports(graph: grimp.ImportGraph, package: str) -> list[tuple[str, str]]:
    """Imports from one adapter into the other (api -> web or web -> api)."""
    crossings = []
    for importer in sorted(graph.modules):
        source = _layer(package, importer)
        if source not in ADAPTERS:
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            target = _layer(package, imported)
            if target in ADAPTERS and target != source:
                crossings.append((importer, imported))
    return crossings


def inward_imports(graph: grimp.ImportGraph, package: str) -> list[tuple[str, str]]:
    """Imports from a capability package (below the HTTP edge) up into api/, web/, edge/ or the
    composition root. The CLI and the demo start the app, so they may."""
    allowed = {*EDGE_LAYERS, "", "cli", "demo"}
    found = []
    for importer in sorted(graph.modules):
        if _layer(package, importer) in allowed:
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if _layer(package, imported) in EDGE_LAYERS:
                found.append((importer, imported))
    return found


def sql_in_adapters(src: Path, package: str) -> list[tuple[str, int, str]]:
    """String literals in api/ and web/ that begin an SQL statement: (module, line, text)."""
    found = []
    for adapter in ADAPTERS:
        folder = src / package / adapter
        for path in sorted(folder.rglob("*.py")):
            module = ".".join(path.relative_to(src).with_suffix("").parts)
            module = module.removesuffix(".__init__")
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                text = node.value if isinstance(node, ast.Constant) else None
                if isinstance(text, str) and SQL_START.match(text):
                    found.append((module, node.lineno, " ".join(text.split())[:60]))
    return found


def check_layers(src: Path, package: str) -> list[Finding]:
    """Everything the layout forbids, found in ``package`` under ``src``."""
    graph = grimp.build_graph(package, cache_dir=None)
    findings = [Finding("cycle", group) for group in import_cycles(graph)]
    findings += [Finding("adapter import", pair) for pair in adapter_imports(graph, package)]
    findings += [Finding("inward import", pair) for pair in inward_imports(graph, package)]
    findings += [
        Finding("sql", (module,), f"line {line}: {text}")
        for module, line, text in sql_in_adapters(src, package)
    ]
    return findings


# ---- the project ------------------------------------------------------------------------


def test_campuscard_keeps_its_layers() -> None:
    findings = check_layers(SRC, PACKAGE)
    assert [str(f) for f in findings] == []


def test_the_composition_root_is_the_one_module_that_imports_both_adapters() -> None:
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    both = [
        module
        for module in sorted(graph.modules)
        if {_layer(PACKAGE, m) for m in graph.find_modules_directly_imported_by(module)}
        >= set(ADAPTERS)
    ]
    assert both == [f"{PACKAGE}.{ROOT}"]


# ---- the check itself, on synthetic packages -----------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


CLEAN = {
    "__init__.py": "",
    "app.py": "from pkg.api import routes\nfrom pkg.web import pages\n",
    "edge.py": "POOL = 'pool'\n",
    "api/__init__.py": "",
    "api/routes.py": "from pkg import edge\nfrom pkg.shop import queries\n",
    "web/__init__.py": "",
    "web/pages.py": (
        "from pkg import edge\nfrom pkg.shop import queries\n"
        "TITLE = 'Select a school'  # prose, not SQL\n"
    ),
    "shop/__init__.py": "",
    "shop/queries.py": "ITEMS = 'SELECT id FROM items WHERE shop_id = $1'\n",
}


@pytest.fixture
def synthetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A writable root on sys.path; the package ``pkg`` under it is forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield tmp_path
    for name in [n for n in sys.modules if n == "pkg" or n.startswith("pkg.")]:
        del sys.modules[name]


def _check(root: Path, changes: dict[str, str]) -> list[str]:
    _write(root / "pkg", CLEAN | changes)
    return [str(f) for f in check_layers(root, "pkg")]


def test_check_passes_a_clean_package(synthetic: Path) -> None:
    assert _check(synthetic, {}) == []


def test_check_reports_a_cycle_with_its_modules(synthetic: Path) -> None:
    # given two modules that import each other, one only inside a function
    changes = {
        "shop/orders.py": "from pkg.shop import stock\n",
        "shop/stock.py": "def f() -> None:\n    from pkg.shop import orders  # noqa\n",
    }
    # then
    assert _check(synthetic, changes) == ["cycle: pkg.shop.orders -> pkg.shop.stock"]


def test_check_reports_a_longer_cycle(synthetic: Path) -> None:
    changes = {
        "shop/a.py": "import pkg.shop.b\n",
        "shop/b.py": "import pkg.shop.c\n",
        "shop/c.py": "import pkg.shop.a\n",
    }
    assert _check(synthetic, changes) == ["cycle: pkg.shop.a -> pkg.shop.b -> pkg.shop.c"]


def test_check_reports_api_importing_web(synthetic: Path) -> None:
    changes = {"api/routes.py": "from pkg import edge\nfrom pkg.web import pages\n"}
    assert _check(synthetic, changes) == ["adapter import: pkg.api.routes -> pkg.web.pages"]


def test_check_reports_web_importing_api(synthetic: Path) -> None:
    changes = {"web/pages.py": "from pkg.api import routes\n"}
    assert _check(synthetic, changes) == ["adapter import: pkg.web.pages -> pkg.api.routes"]


def test_check_reports_a_capability_importing_the_edge(synthetic: Path) -> None:
    changes = {"shop/queries.py": "from pkg import edge\n"}
    assert _check(synthetic, changes) == ["inward import: pkg.shop.queries -> pkg.edge"]


def test_check_reports_sql_in_a_route(synthetic: Path) -> None:
    changes = {
        "api/routes.py": (
            "async def items(pool):\n"
            "    return await pool.fetch(\n"
            "        'SELECT id, name '\n"
            "        'FROM items ORDER BY id'\n"
            "    )\n"
        ),
        "web/pages.py": (
            'DONE = """UPDATE orders SET done = true WHERE id = $1"""\n'
            "GONE = 'DELETE FROM carts WHERE id = $1'\n"
            "NEW = 'INSERT INTO carts (id) VALUES ($1)'\n"
            "RECENT = 'WITH recent AS (SELECT 1) SELECT * FROM recent'\n"
        ),
    }
    assert _check(synthetic, changes) == [
        "sql: pkg.api.routes (line 3: SELECT id, name FROM items ORDER BY id)",
        "sql: pkg.web.pages (line 1: UPDATE orders SET done = true WHERE id = $1)",
        "sql: pkg.web.pages (line 2: DELETE FROM carts WHERE id = $1)",
        "sql: pkg.web.pages (line 3: INSERT INTO carts (id) VALUES ($1))",
        "sql: pkg.web.pages (line 4: WITH recent AS (SELECT 1) SELECT * FROM recent)",
    ]
