"""The package's import graph: no cycles, and the seams the modules are built around.

The graph is grimp's, read from the source: every `import` and `from … import`
of every module, at the top or inside a function (a lazy import runs too),
but not those under `if TYPE_CHECKING:`, which never run. A rule that says
"A imports no B" holds for chains as well: A → C → B breaks it.

The last rule is not about imports: the `deliveries` table has one writer,
the ledger (ledger.py), and every other module only reads it. That one is
checked on the source text (the tests may write rows; they are not scanned).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import grimp
import pytest

PACKAGE = "gongbao_feed"
SOURCE = Path(__file__).resolve().parent.parent / PACKAGE


def mod(name: str) -> str:
    return f"{PACKAGE}.{name}"


def short(module: str) -> str:
    return module.removeprefix(f"{PACKAGE}.")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    # cache_dir=None: grimp would otherwise leave a .grimp_cache folder behind.
    return grimp.build_graph(PACKAGE, cache_dir=None, exclude_type_checking_imports=True)


# -- (a) no cycle anywhere ----------------------------------------------------------------
def strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """The graph's strongly connected components of more than one module, or with a
    self-import (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0

    def edges(m: str) -> list[str]:
        return sorted(graph.find_modules_directly_imported_by(m))

    for root in sorted(graph.modules):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(edges(root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges(child))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph.find_modules_directly_imported_by(node):
                        found.append(sorted(component))
    return sorted(found)


def describe_cycle(graph: grimp.ImportGraph, component: list[str]) -> str:
    """One way round the component (its first module to its second and back), each
    step with the line that imports."""
    first, second = component[0], component[-1]
    steps = []
    for a_to_b in (graph.find_shortest_chain(first, second),
                   graph.find_shortest_chain(second, first)):
        chain = a_to_b or ()
        for a, b in pairwise(chain):
            detail = graph.get_import_details(importer=a, imported=b)
            where = f"line {detail[0]['line_number']}: {detail[0]['line_contents']}" \
                if detail else "?"
            steps.append(f"    {short(a)} → {short(b)}  ({where})")
    return " ↔ ".join(short(m) for m in component) + "\n" + "\n".join(steps)


def test_no_import_cycle_at_all(graph: grimp.ImportGraph) -> None:
    cycles = strongly_connected(graph)
    assert not cycles, "import cycles:\n" + "\n".join(describe_cycle(graph, c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check above is not vacuous: a cycle through a lazy import is found."""
    g = grimp.ImportGraph()
    for m in ("p", "p.a", "p.b", "p.c", "p.d"):
        g.add_module(m)
    g.add_import(importer="p.a", imported="p.b")
    g.add_import(importer="p.b", imported="p.c")
    g.add_import(importer="p.c", imported="p.a")  # e.g. inside a function
    g.add_import(importer="p.d", imported="p.a")
    assert strongly_connected(g) == [["p.a", "p.b", "p.c"]]


def test_lazy_imports_are_in_the_graph(graph: grimp.ImportGraph) -> None:
    """Imports inside functions count: skeleton.create_database imports store in its body."""
    details = graph.get_import_details(importer=mod("skeleton"), imported=mod("store"))
    assert details and all(d["line_contents"].startswith("from .store") for d in details)
    source = (SOURCE / "skeleton.py").read_text("utf-8").splitlines()
    line = details[0]["line_number"]
    assert source[line - 1].startswith("    "), "expected the import inside a function"


# -- (b) the seams ------------------------------------------------------------------------------
FORBIDDEN = [
    # The Transport interface knows no concrete transport, and nothing that uses it.
    ("transport", ("outbox", "smtp", "deliver", "publish")),
    # A concrete transport delivers messages and reports outcomes; it knows no ledger.
    ("outbox", ("deliver", "publish", "ledger")),
    ("smtp", ("deliver", "publish", "ledger")),
    # Signing is one step of making a message (digest.py); no transport knows of it,
    # so the outbox keeps exactly the bytes SMTP would send.
    ("transport", ("signing",)),
    ("outbox", ("signing",)),
    ("smtp", ("signing",)),
    ("signing", ("digest", "transport", "deliver", "outbox", "smtp")),
    # Rendering makes messages and knows nothing of how they leave.
    ("digest", ("transport", "deliver", "outbox", "smtp")),
]


@pytest.mark.parametrize(
    ("importer", "imported"),
    [(a, b) for a, forbidden in FORBIDDEN for b in forbidden],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_seam(graph: grimp.ImportGraph, importer: str, imported: str) -> None:
    chain = graph.find_shortest_chain(mod(importer), mod(imported))
    assert chain is None, f"{importer} must not import {imported}: " + " → ".join(
        short(m) for m in chain
    )


def test_the_reader_imports_only_models(graph: grimp.ImportGraph) -> None:
    """pages.py (the reader) stands alone: only the models, directly or by way of others,
    and i18n for the operator's language of its warnings."""
    assert graph.find_upstream_modules(mod("pages")) == {mod("models"), mod("i18n")}


def test_i18n_is_a_leaf(graph: grimp.ImportGraph) -> None:
    """Every module may translate: i18n itself imports nothing of the package."""
    assert graph.find_upstream_modules(mod("i18n")) == set()


# -- the ledger is the deliveries table's one writer -----------------------------------------------
_WRITE_CALLS = {"insert", "update", "delete", "upsert"}
_WRITE_METHODS = {"insert", "update", "delete"}
_SQL_WRITE = re.compile(
    r"\b(insert\s+into|update|delete\s+from|merge\s+into)\s+\"?deliveries\"?\b", re.IGNORECASE
)


def deliveries_writes(source: str) -> list[str]:
    """Where a module's source writes the deliveries table: SQLAlchemy's insert/update/
    delete (as functions, dialect inserts, or methods) of `deliveries_t` or a name
    bound to it (`d = deliveries_t`, `d, m = deliveries_t, members_t`), store.upsert
    on it, and SQL text that inserts, updates or deletes `deliveries`."""
    tree = ast.parse(source)
    names = {"deliveries_t"}
    known = 0
    while known != len(names):  # again until no new alias: aliases of aliases
        known = len(names)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Assign):
                continue
            pairs: list[tuple[ast.expr, ast.expr]] = []
            for target in node.targets:
                if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    pairs += zip(target.elts, node.value.elts, strict=False)
                else:
                    pairs.append((target, node.value))
            for target, value in pairs:
                if isinstance(target, ast.Name) and _is_table(value, names):
                    names.add(target.id)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else (
                func.attr if isinstance(func, ast.Attribute) else "")
            as_function = called in _WRITE_CALLS and any(_is_table(a, names) for a in node.args)
            as_method = (isinstance(func, ast.Attribute) and func.attr in _WRITE_METHODS
                         and _is_table(func.value, names))
            if as_function or as_method:
                found.append(f"line {node.lineno}: {ast.unparse(node)[:80]}")
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and _SQL_WRITE.search(node.value)):
            found.append(f"line {node.lineno}: SQL {node.value.strip()[:60]!r}")
    return found


def _is_table(node: ast.expr, names: set[str]) -> bool:
    if isinstance(node, ast.Name):
        return node.id in names
    if isinstance(node, ast.Attribute):  # store.deliveries_t
        return node.attr == "deliveries_t"
    return False


def package_sources() -> dict[str, str]:
    return {
        str(path.relative_to(SOURCE.parent)): path.read_text("utf-8")
        for path in sorted(SOURCE.rglob("*.py"))
    }


def test_only_the_ledger_writes_deliveries() -> None:
    writers = {path: w for path, src in package_sources().items() if (w := deliveries_writes(src))}
    assert f"{PACKAGE}/ledger.py" in writers, "the check no longer sees the ledger's own writes"
    # A schema revision may move rows as it changes the schema (0005 merges the
    # ledger rows of one mailbox's spellings); at run time only the ledger writes.
    revisions = f"{PACKAGE}/migrations/versions/"
    others = {path: w for path, w in writers.items()
              if path != f"{PACKAGE}/ledger.py" and not path.startswith(revisions)}
    assert not others, "only ledger.py writes the deliveries table:\n" + "\n".join(
        f"  {path} {w}" for path, ws in others.items() for w in ws
    )


@pytest.mark.parametrize(
    "source",
    [
        "conn.execute(deliveries_t.insert().values(issue=1))",
        "conn.execute(deliveries_t.update().where(x))",
        "conn.execute(update(deliveries_t).values(state='sent'))",
        "d, m = deliveries_t, members_t\nconn.execute(delete(d).where(d.c.issue == 1))",
        "d = deliveries_t\ne = d\nstmt = sqlite.insert(e).values(rows)",
        "from . import store\nconn.execute(store.deliveries_t.delete())",
        "stmt = upsert(conn, deliveries_t)",
        "conn.exec_driver_sql('UPDATE deliveries SET state = ?')",
        "op.execute('DELETE FROM \"deliveries\" WHERE issue = 1')",
    ],
)
def test_the_writer_check_sees_writes(source: str) -> None:
    assert deliveries_writes(source)


@pytest.mark.parametrize(
    "source",
    [
        "rows = conn.execute(select(deliveries_t).where(deliveries_t.c.issue == 1))",
        "d = deliveries_t\nq = select(d.c.email).where(d.c.issue == 1)",
        "conn.execute(update(members_t).values(status='active'))",
        "'the deliveries table: who was sent what'",
        "op.add_column('deliveries', sa.Column('x', sa.Text()))",
    ],
)
def test_the_writer_check_ignores_reads(source: str) -> None:
    assert not deliveries_writes(source)
