"""The engine never imports Textual; the app is imported only when it is run."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_engine_and_the_tui_package_import_without_textual():
    modules = _modules_after("import orchestra_tui.core.events, orchestra_tui.core.session, orchestra_tui.tui")
    assert not any(name == "textual" or name.startswith("textual.") for name in modules)


def test_the_fold_is_textual_free():
    modules = _modules_after("import orchestra_tui.tui.event_handler, orchestra_tui.tui.replay")
    assert "textual" not in modules


def test_the_profile_form_and_the_trajectory_listing_are_textual_free():
    modules = _modules_after("import orchestra_tui.tui.profile_form, orchestra_tui.tui.trajectory_index")
    assert "textual" not in modules
