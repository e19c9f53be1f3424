"""The package's shape (issue 17): the CLI is a thin shell (nothing else imports argparse or the CLI), the
import graph has no cycle, configuration is passed, not kept in module globals, and the public API is typed
and documented."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("codec_assist", "analyzers", "policies")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = p
    return mods


def _runtime_imports(path: Path) -> list[ast.stmt]:
    """Every import statement, at any depth (lazy imports inside functions count), except those under
    `if TYPE_CHECKING:` (never executed)."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING"
            for n in ast.walk(node)}
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in skip]


def _graph() -> dict[str, set[str]]:
    mods = _modules()

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for m, p in mods.items():
        deps = set()
        for node in _runtime_imports(p):
            if isinstance(node, ast.Import):
                deps |= {owner(a.name) for a in node.names}
                continue
            base = node.module or ""
            if node.level:
                pkg = m if p.name == "__init__.py" else m.rpartition(".")[0]
                for _ in range(node.level - 1):
                    pkg = pkg.rpartition(".")[0]
                base = pkg + ("." + base if base else "")
            deps |= {owner(f"{base}.{a.name}") if f"{base}.{a.name}" in mods else owner(base) for a in node.names}
        graph[m] = {d for d in deps if d and d != m}
    return graph


def test_nothing_outside_the_cli_imports_argparse_or_the_cli():
    offenders = []
    for m, p in _modules().items():
        if m == "codec_assist.cli" or m.startswith("codec_assist.cli.") or m == "codec_assist.__main__":
            continue
        for node in _runtime_imports(p):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(n == "argparse" or n == "codec_assist.cli" or n.startswith("codec_assist.cli.") for n in names):
                offenders.append(f"{m}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module == "codec_assist" and \
                    any(a.name == "cli" for a in node.names):
                offenders.append(f"{m}:{node.lineno}")
    assert not offenders, offenders


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return path[path.index(w):] + [w]
            if w not in state and (cycle := visit(w)):
                return cycle
        state[v] = 2
        path.pop()
        return None

    for v in sorted(graph):
        if v not in state:
            cycle = visit(v)
            assert cycle is None, " -> ".join(cycle)


def test_no_configuration_in_module_globals():
    """The CLI's --overwrite and input limits are passed to the library, never stored in it."""
    for m, p in _modules().items():
        tree = ast.parse(p.read_text())
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            for t in targets:
                assert getattr(t, "id", "") not in ("OVERWRITE", "LIMITS"), f"{m} keeps {t.id} as a global"
        for node in ast.walk(tree):  # a worker process's private handle (e.g. engine._started) is not configuration
            if isinstance(node, ast.Global) and any(not n.startswith("_") for n in node.names):
                raise AssertionError(f"{m}:{node.lineno} rebinds module state with `global`")


def test_import_is_cheap_and_the_api_is_documented():
    """`import codec_assist` loads no heavy library; help(ca.encode) documents the typed API."""
    code = ("import sys, codec_assist as ca; heavy = [m for m in ('torch', 'av', 'cv2', 'numpy') if m in sys.modules];"
            " print(heavy); import pydoc; print(pydoc.render_doc(ca.encode, renderer=pydoc.plaintext))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    first, _, doc = r.stdout.partition("\n")
    assert first == "[]", first
    assert "EncodeOptions" in doc and "bitrate" in doc and "Returns an EncodeReport" in doc and ">>>" in doc
    import codec_assist as ca

    for name in ca.__all__:
        assert getattr(ca, name) is not None, name
        if callable(getattr(ca, name)) and not isinstance(getattr(ca, name), type):
            assert (getattr(ca, name).__doc__ or "").strip(), f"{name} has no docstring"
