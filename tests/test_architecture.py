"""docs/architecture.md keeps up with the code: it names every module, and only real ones.

A module is named by its path relative to its package (``checks/diagnose.py`` for
``inspectnn/checks/diagnose.py``) or with the package in front; a relative path that
two packages share (``__init__.py``) counts only with the package in front. Every
``*.py`` path the document mentions must be a file, relative to the repository root
or to one of the packages.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = "docs/architecture.md"
PACKAGES = ("inspectnn", "pytest_plugin")
_PY_PATH = re.compile(r"(?<![\w./-])((?:[\w-]+/)*[\w-]+\.py)(?![\w/])")


def _module_names(root: Path) -> dict[str, set[str]]:
    """Each module file (``package/relative path``) -> the names that count as naming it."""
    files = {
        f"{package}/{path.relative_to(root / package).as_posix()}": package
        for package in PACKAGES
        for path in sorted((root / package).rglob("*.py"))
        if "__pycache__" not in path.parts
    }
    relative = [name.split("/", 1)[1] for name in files]
    names: dict[str, set[str]] = {}
    for name in files:
        short = name.split("/", 1)[1]
        names[name] = {name} if relative.count(short) > 1 else {name, short}
    return names


def architecture_problems(text: str, root: Path) -> list[str]:
    """What is wrong with ``text`` as the architecture document of the tree at ``root``.

    Args:
        text: The document.
        root: The repository root, holding the packages.

    Returns:
        One line per module the document does not name and per ``.py`` path it names
        that is not a file; empty when the document is in step with the tree.
    """
    mentioned = set(_PY_PATH.findall(text))
    missing = [
        f"{module} is not named in {DOC}"
        for module, names in _module_names(root).items()
        if not names & mentioned
    ]
    bases = [root, *(root / package for package in PACKAGES)]
    ghosts = [
        f"{DOC} names {path}, which is no file"
        for path in sorted(mentioned)
        if not any((base / path).is_file() for base in bases)
    ]
    return missing + ghosts


def test_the_architecture_document_names_every_module_and_no_other() -> None:
    text = (ROOT / DOC).read_text(encoding="utf-8")
    assert architecture_problems(text, ROOT) == []


def test_the_readme_links_the_architecture_document() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    development = readme.split("\n## Development\n", 1)[1].split("\n## ", 1)[0]
    assert f"]({DOC})" in development


def _tree(root: Path, files: list[str]) -> None:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text('"""A module."""\n', encoding="utf-8")


def test_a_module_left_out_and_a_file_that_is_gone_are_both_reported(tmp_path: Path) -> None:
    _tree(tmp_path, ["inspectnn/__init__.py", "inspectnn/api.py", "inspectnn/checks/new.py",
                     "pytest_plugin/__init__.py", "tests/test_api.py"])  # fmt: skip
    text = (
        "`inspectnn/__init__.py` and `api.py`; the plugin is `pytest_plugin/__init__.py`;\n"
        "tested in `tests/test_api.py`. `checks/old.py` was merged into api.py's checks.\n"
    )
    assert architecture_problems(text, tmp_path) == [
        f"inspectnn/checks/new.py is not named in {DOC}",
        f"{DOC} names checks/old.py, which is no file",
    ]


def test_a_path_two_packages_share_counts_only_with_its_package(tmp_path: Path) -> None:
    _tree(tmp_path, ["inspectnn/__init__.py", "inspectnn/renderers/__init__.py",
                     "pytest_plugin/__init__.py"])  # fmt: skip
    text = "`__init__.py` re-exports; `renderers/__init__.py` is empty.\n"
    assert architecture_problems(text, tmp_path) == [
        f"inspectnn/__init__.py is not named in {DOC}",
        f"pytest_plugin/__init__.py is not named in {DOC}",
    ]


def _module_imports(path: Path) -> set[str]:
    """The ``inspectnn`` modules a file imports at module level (not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.split(".")[0] == "inspectnn"}


def test_no_renderer_imports_a_check_and_liveness_sits_under_both() -> None:
    renderers = sorted((ROOT / "inspectnn" / "renderers").glob("*.py"))
    reaching = {
        path.name: sorted(n for n in _module_imports(path) if n.startswith("inspectnn.checks"))
        for path in renderers
    }
    assert {name: found for name, found in reaching.items() if found} == {}
    assert _module_imports(ROOT / "inspectnn" / "liveness.py") == {"inspectnn.records"}


MAX_LINES = 450
"""Issue 14's size for a module that holds one concept."""
LONGER: set[str] = set()
"""Modules allowed past ``MAX_LINES``: none any more; a new entry needs a wart in the docs."""


def test_no_module_grows_past_the_size_of_one_concept() -> None:
    sizes = {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {name for name, n in sizes.items() if n > MAX_LINES} <= LONGER


def _imports_of(path: Path, root: Path) -> set[str]:
    """The project files ``path`` imports at module level, as ``inspectnn/x/y.py`` paths.

    ``from inspectnn.renderers import columns`` names the submodule ``columns``;
    imports under ``if TYPE_CHECKING:`` and inside functions are not module level.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            modules = [m for m in subs if _is_module(root, m)]
            if len(modules) < len(subs):  # a name from the module itself
                modules.append(node.module)
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        for module in modules:
            if module.split(".")[0] not in PACKAGES:
                continue
            base = root / module.replace(".", "/")
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file():
                    found.add(candidate.relative_to(root).as_posix())
    found.discard(path.relative_to(root).as_posix())
    return found


def _is_module(root: Path, dotted: str) -> bool:
    base = root / dotted.replace(".", "/")
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _short(name: str) -> str:
    """``inspectnn/checks/x.py`` -> ``checks/x.py``; a package's top ``__init__.py`` whole."""
    rest = name.split("/", 1)[1]
    return name if rest == "__init__.py" else rest


def import_diagram(root: Path, width: int = 92) -> str:
    """The layered import diagram of the tree at ``root``, as docs/architecture.md shows it.

    A module's row is one above the highest row of what it imports at module level
    (row 0: imports nothing from the project). Importing a package's module also runs
    the package's ``__init__.py``; that implicit import is not drawn.
    """
    files = {
        path.relative_to(root).as_posix(): path
        for package in PACKAGES
        for path in sorted((root / package).rglob("*.py"))
        if "__pycache__" not in path.parts
    }
    deps = {name: _imports_of(path, root) for name, path in files.items()}
    row: dict[str, int] = {}

    def level(name: str, seen: tuple[str, ...] = ()) -> int:
        if name not in row:
            assert name not in seen, f"import cycle: {' -> '.join((*seen, name))}"
            row[name] = max((level(d, (*seen, name)) + 1 for d in deps[name]), default=0)
        return row[name]

    lines: list[str] = []
    for n in range(max(level(name) for name in files), -1, -1):
        label = f"{n:<3}"
        for name in sorted(name for name in files if row[name] == n):
            head = f"{label}{_short(name)}"
            label = "   "
            if not deps[name]:
                lines.append(head)
                continue
            text, indent = f"{head} ─► ", " " * (len(head) + 4)
            for k, dep in enumerate(sorted(_short(d) for d in deps[name])):
                item = dep + ("," if k < len(deps[name]) - 1 else "")
                if len(text) + len(item) > width and not text.endswith("─► "):
                    lines.append(text.rstrip())
                    text = indent
                text += item + " "
            lines.append(text.rstrip())
    return "\n".join(lines) + "\n"


_DIAGRAM = re.compile(r"(## Direction of imports\n.*?```\n)(.*?)(```\n)", re.S)


def test_the_import_diagram_is_the_code_s() -> None:
    text = (ROOT / DOC).read_text(encoding="utf-8")
    found = _DIAGRAM.search(text)
    assert found is not None, f"{DOC} lost its import diagram"
    assert found[2] == import_diagram(ROOT), (
        f"{DOC}'s import diagram is out of date: python tests/test_architecture.py --write"
    )


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--write"]:
        path = ROOT / DOC
        text = path.read_text(encoding="utf-8")
        path.write_text(
            _DIAGRAM.sub(lambda m: m[1] + import_diagram(ROOT) + m[3], text, count=1),
            encoding="utf-8",
        )
    else:
        print(import_diagram(ROOT), end="")
