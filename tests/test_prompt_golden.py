"""Golden files: `orchestra-tui prompt` output per variant and context shape, with a real tokenizer.

The tokenizer is the embedded GGUF's (the real Qwen3 tokenizer needs a model hub). The goldens pin the
exact messages and tools; regenerate with ORCHESTRA_UPDATE_GOLDEN=1 after a deliberate change, and read
the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orchestra_tui.cli import main
from orchestra_tui.core.toolset import reference_tools_path

GOLDEN = Path(__file__).parent / "golden" / "prompt"
SHARED_TOOLS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "toolorchestra" / "tools.json"


def _long_docs() -> list[str]:
    # Enough distinct text to pass the 24k/27k-token context budgets and the 12k-token code budget.
    return [
        " ".join(f"Passage {n} sentence {i} mentions item {n * 100 + i} of the archive." for i in range(60))
        for n in range(60)
    ]


def _long_code() -> list[dict[str, str]]:
    return [
        {"code": f"for i in range(400):\n    print({n}, i, i * {n})", "output": "\n".join(f"{n} {i} {i * n}" for i in range(400))}
        for n in range(4)
    ]


CASES = {
    "empty": ([], []),
    "docs": (["Paris is the capital and largest city of France.", "Lyon is the third-largest city of France."], []),
    "docs_code": (
        ["The Eiffel Tower is 330 metres tall."],
        [{"code": "print(330 * 3.28084)", "output": "1082.6772\n"}],
    ),
    "truncated": (_long_docs(), _long_code()),
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["hle", "frames", "train"])
@pytest.mark.parametrize("case", list(CASES))
def test_prompt_matches_golden(variant, case, tmp_path, capsys):
    docs, code = CASES[case]
    args = ["prompt", "--problem", "Which city is the capital of France, and how tall is its tower in feet?",
            "--variant", variant]
    if docs:
        (tmp_path / "docs.json").write_text(json.dumps(docs))
        args += ["--docs", str(tmp_path / "docs.json")]
    if code:
        (tmp_path / "code.json").write_text(json.dumps(code))
        args += ["--code", str(tmp_path / "code.json")]
    assert main(args) == 0
    produced = capsys.readouterr().out
    golden = GOLDEN / f"{variant}-{case}.json"
    if os.environ.get("ORCHESTRA_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(produced, encoding="utf-8")
    assert produced == golden.read_text(encoding="utf-8")

    data = json.loads(produced)
    user = data["messages"][1]["content"]
    if case == "truncated":
        # The tail survives, the head does not, and the block fits the budget.
        assert "Doc 1: " not in user and "Doc 60: Passage 59 sentence 0 " in user
        assert "print(3, i, i * 3)" in user
    tool_names = [t["function"]["name"] for t in data["tools"]]
    assert tool_names == (["enhance_reasoning", "answer"] if docs and variant == "frames"
                          else ["enhance_reasoning", "answer", "search"])


def test_shipped_tool_list_is_the_reference_verbatim():
    shipped = reference_tools_path().read_bytes()
    if SHARED_TOOLS.is_file():
        assert shipped == SHARED_TOOLS.read_bytes()
    data = json.loads(shipped)
    answer = next(t for t in data if t["function"]["name"] == "answer")
    assert "answer-math-2 | $$0.2 | $0.2 | 9s" in answer["function"]["parameters"]["properties"]["model"]["description"]
    assert (reference_tools_path().parent / "LICENSE").is_file()


def test_prompt_rejects_bad_docs_file(tmp_path, capsys):
    bad = tmp_path / "docs.json"
    bad.write_text('{"not": "a list"}')
    assert main(["prompt", "--problem", "x", "--docs", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--docs" in err and "JSON list" in err
