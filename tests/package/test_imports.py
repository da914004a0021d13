"""The package's import graph has no cycle.

Read from the source (no Jittor needed): an edge for every ``import`` statement of a module, at
module level or inside a function (a lazy import still ties the two modules together), to the
module it names and to the packages above that module that the importer is not inside (importing
``a.b.c`` runs ``a/b/__init__``; a module inside ``a.b`` importing its sibling does not re-run it).
"""
import ast
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "jittor_pranet"


def _modules() -> Dict[str, Path]:
    mods = {}
    for f in (ROOT / PACKAGE).rglob("*.py"):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def _imported(name: str, path: Path, mods: Dict[str, Path]) -> Set[str]:
    """The package modules ``name`` imports (by any import statement in it)."""
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in mods)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for a in node.names:
                full = f"{base}.{a.name}"
                if full in mods:  # a submodule
                    found.add(full)
                elif base in mods:  # a name defined in a module
                    found.add(base)
    return found - {name}


def import_graph() -> Dict[str, Set[str]]:
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        edges = set()
        for target in _imported(name, path, mods):
            edges.add(target)
            parts = target.split(".")
            for i in range(1, len(parts)):  # packages initialised on the way, unless the importer is inside
                parent = ".".join(parts[:i])
                if parent in mods and not (name == parent or name.startswith(parent + ".")):
                    edges.add(parent)
        graph[name] = edges
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_the_graph_sees_package_imports():
    """The walker finds known edges (a graph without edges would trivially have no cycle)."""
    g = import_graph()
    assert "jittor_pranet.kernels.flags" in g["jittor_pranet.kernels.conv"]
    assert "jittor_pranet.kernels" in g["jittor_pranet.ops"]
    assert "jittor_pranet.models" in g["jittor_pranet.engine.model_spec"]  # a lazy import inside a function
    # a made-up back edge closes a cycle through the models package
    g["jittor_pranet.models.registry"] = g["jittor_pranet.models.registry"] | {"jittor_pranet.fuse"}
    assert any("jittor_pranet.models.registry" in c and "jittor_pranet.fuse" in c for c in cycles(g))


def test_package_has_no_import_cycle():
    found = cycles(import_graph())
    assert not found, f"import cycles: {found}"


def test_command_modules_never_import_each_other():
    """cli/<command>.py may use cli/common.py (and its own helper module), never another command."""
    from jittor_pranet.cli import COMMANDS

    commands = {f"jittor_pranet.cli{mod}" for mod in COMMANDS.values()}
    g = import_graph()
    crossing = {c: sorted(g.get(c, set()) & (commands - {c})) for c in commands}
    assert not any(crossing.values()), crossing


#: the inference modules by job, each importing only those before it
INFERENCE = ("precision", "model_spec", "predictor", "outputs", "testsets")


def test_inference_modules_by_job():
    """``engine.inference`` only re-exports (the package imports the modules by job, never the old path),
    its names are those modules' objects, and the modules import each other in one direction."""
    import jittor_pranet.engine.inference as shim

    g = import_graph()
    users = sorted(m for m, edges in g.items() if "jittor_pranet.engine.inference" in edges)
    assert users == [], users
    mods = [f"jittor_pranet.engine.{m}" for m in INFERENCE]
    assert set(g["jittor_pranet.engine.inference"]) == set(mods)
    for i, mod in enumerate(mods):
        later = set(mods[i:])
        assert not (g[mod] & later), (mod, sorted(g[mod] & later))
    import importlib

    homes = {name: importlib.import_module(m) for m in mods for name in importlib.import_module(m).__all__}
    assert set(shim.__all__) == set(homes)
    for name in shim.__all__:
        assert getattr(shim, name) is getattr(homes[name], name), name
