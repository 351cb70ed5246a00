"""The engine never imports Textual: only orchestra_tui/tui/ may."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "orchestra_tui"


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_the_tui_imports_textual():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "tui" in path.relative_to(PACKAGE).parts[:1]:
            continue
        if any(m == "textual" or m.startswith("textual.") for m in imported_modules(path)):
            offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_lower_layers_do_not_import_upper_ones():
    rules = {"core": ("orchestra_tui.tui", "orchestra_tui.cli", "orchestra_tui.console"),
             "backends": ("orchestra_tui.core", "orchestra_tui.tui", "orchestra_tui.services"),
             "services": ("orchestra_tui.core", "orchestra_tui.tui", "orchestra_tui.backends")}
    # The one retry layer (backends/http_session.py) also serves the retrieval client: one owner of retries.
    shared = {"orchestra_tui.backends.http_session"}
    offenders = []
    for layer, banned in rules.items():
        for path in (PACKAGE / layer).rglob("*.py"):
            for module in imported_modules(path):
                if module.startswith(banned) and module not in shared:
                    offenders.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert offenders == []
