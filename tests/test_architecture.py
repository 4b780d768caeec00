"""The house rules of the code (README "Architecture"): small files, one-way imports, no circle."""

import ast
from pathlib import Path

from tests.helpers import REPO

PACKAGE = REPO / "hf_vdd"


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """The hf_vdd modules `path` imports (relative imports resolved); with `top_level_only`, those run at import."""
    tree, here = ast.parse(path.read_text()), _module(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.startswith("hf_vdd"):
                candidates = [f"{base}.{a.name}" for a in node.names]
                found |= {c for c in candidates if c in MODULES} or {base}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("hf_vdd")}
    return found


MODULES = {_module(p) for p in PACKAGE.rglob("*.py")}


def test_files_are_small():
    big = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    big |= {str(p.relative_to(REPO)): n for p in (REPO / "recipes").glob("*.py")
            if (n := len(p.read_text().splitlines())) > 150}
    assert not big, f"over the limit (400 lines in hf_vdd/, 150 in recipes/): {big}"


def test_no_import_circle_and_the_library_never_imports_recipe_glue():
    graph = {_module(p): _imports(p, top_level_only=True) - {_module(p)} for p in PACKAGE.rglob("*.py")}
    state, circles = {}, []  # depth-first search: a back edge (to a module still on the path) closes a circle

    def visit(node, path):
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                circles.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, f"import circles (module-level imports): {circles[:3]}"
    for path in list((PACKAGE / "distillers").glob("*.py")) + list((PACKAGE / "diffusion").glob("*.py")):
        imported = _imports(path, top_level_only=False)
        assert "hf_vdd.cli" not in imported, f"{path.name} imports the recipe glue (hf_vdd.cli)"
        assert not any(m.startswith("recipes") for m in imported)
        assert "import recipes" not in path.read_text() and "from recipes" not in path.read_text()
