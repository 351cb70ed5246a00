"""Eval: judging rules, resumable runs (SIGKILL included), and a summary that agrees with the files."""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from orchestra_tui.backends.base import BackendError
from orchestra_tui.backends.scripted import ScriptedBackend
from orchestra_tui.cli import main
from orchestra_tui.core.catalog import load_catalog
from orchestra_tui.core.ledger import PriceBook
from orchestra_tui.eval.judge import LlmJudge, judge_answer, parse_judge_reply, rule_verdict
from orchestra_tui.eval.runner import EvalError, read_questions

CATALOG = Path(__file__).parent / "data" / "scripted_catalog.toml"


# --- judging ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("prediction, reference, expected", [
    ("", "Paris", (False, "empty")),
    ("   ", "Paris", (False, "empty")),
    (" ".join(["word"] * 501), "word", (False, "too_long")),
    ("  PARIS ", "paris", (True, "exact")),
    (" ".join(["w"] * 500), "x", None),  # 500 words is not too long: it goes to the judge
    ("Paris, France", "Paris", None),
])
def test_rules_before_any_judge(prediction, reference, expected):
    assert rule_verdict(prediction, reference) == expected


@pytest.mark.parametrize("reply, expected", [
    ("<correct>True</correct>", True), ("thinking… <correct> true </correct>", True),
    ("<correct>False</correct>", False), ("no tag at all", False), ("True", True),
])
def test_the_judge_reply_is_parsed_like_the_reference(reply, expected):
    assert parse_judge_reply(reply) is expected


def scripted_judge(reply):
    catalog = load_catalog(CATALOG)
    return LlmJudge("answer-1", catalog.experts["answer-1"], ScriptedBackend([reply], model="gpt-5"), PriceBook.default())


async def test_an_answer_without_exact_match_goes_to_the_judge_or_stays_unjudged():
    judge = scripted_judge("<correct>True</correct>")
    verdict = await judge_answer("q1", "Capital?", "Paris, France", "Paris", judge)
    assert (verdict.correct, verdict.method, verdict.judge) == (True, "judge", "answer-1")
    sent = judge.backend.calls[0]["messages"][0]["content"]
    assert "Student answer: Paris, France" in sent and "Reference answer: Paris" in sent
    assert Decimal(verdict.cost_usd) > 0  # the judge's own call is priced, apart from the episode
    unjudged = await judge_answer("q1", "Capital?", "Paris, France", "Paris", None)
    assert (unjudged.correct, unjudged.method) == (None, "unjudged")
    exact = await judge_answer("q1", "Capital?", "paris", "Paris", judge)
    assert (exact.correct, exact.method) == (True, "exact") and len(judge.backend.calls) == 1


async def test_a_failing_judge_leaves_the_question_open():
    verdict = await judge_answer("q1", "Capital?", "Lutetia", "Paris", scripted_judge(BackendError("down")))
    assert (verdict.correct, verdict.method) == (None, "judge_failed")


def test_questions_file_errors_name_the_line(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": 1, "question": "a", "answer": "b"}\n{"id": 2, "question": "c"}\n')
    with pytest.raises(EvalError, match="line 2 lacks answer"):
        read_questions(path)
    path.write_text('{"id": "a/b", "question": "a", "answer": "b"}\n{"id": "a_b", "question": "c", "answer": 1}\n')
    with pytest.raises(EvalError, match="line 2: id 'a_b' repeats"):
        read_questions(path)
    path.write_text("".join(json.dumps({"id": i, "question": "q", "answer": 1}) + "\n" for i in range(5)))
    assert [q.id for q in read_questions(path, limit=3)] == ["0", "1", "2"]


# --- running -----------------------------------------------------------------------------------------


def write_questions(path: Path, count: int) -> list[str]:
    """Even questions are answered right by the scripted world, odd ones wrong."""
    rows = [{"id": f"q{i:02d}", "question": f"Which city is marked? [[Paris]] (#{i})",
             "answer": "Paris" if i % 2 == 0 else "Lyon"} for i in range(count)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return [r["id"] for r in rows]


def eval_args(questions: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", str(questions), "--out", str(out), "--catalog", str(CATALOG), "--scripted-latency", "0",
            "--max-rounds", "3", *extra]


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def recompute(folder: Path) -> dict:
    """The summary's numbers straight from the JSONL files, without the summary code."""
    costs, latencies, right, wrong, unjudged, calls = [], [], 0, 0, 0, Counter()
    for path in sorted(folder.glob("*.jsonl")):
        lines = read_lines(path)
        ended = [r for r in lines if r["type"] == "episode_ended"]
        if not ended:
            continue
        if ended[-1]["cost_usd"] is not None:
            costs.append(Decimal(ended[-1]["cost_usd"]))
        latencies.append(ended[-1]["latency_s"])
        verdicts = [r for r in lines if r["type"] == "judged"]
        correct = verdicts[-1]["correct"] if verdicts else None
        right += correct is True
        wrong += correct is False
        unjudged += correct is None
        calls.update(r["alias"] for r in lines if r["type"] == "tool_call_started")
    finished = len(latencies)
    return {
        "finished": finished, "right": right, "wrong": wrong, "unjudged": unjudged,
        "accuracy": right / finished if finished else None,
        "cost_mean_usd": format(sum(costs) / len(costs), "f") if costs else None,
        "cost_median_usd": format(statistics.median(costs), "f") if costs else None,
        "unpriced": finished - len(costs),
        "latency_mean_s": pytest.approx(sum(latencies) / finished) if finished else None,
        "latency_median_s": pytest.approx(statistics.median(latencies)) if finished else None,
        "calls": dict(calls),
    }


def test_two_profiles_side_by_side_and_the_summary_agrees_with_the_files(tmp_path, capsys):
    questions, out = tmp_path / "q.jsonl", tmp_path / "out"
    ids = write_questions(questions, 8)
    code = main(eval_args(questions, out, "--profiles", "balanced,avoid-gpt5", "--concurrency", "3",
                          "--judge", "answer-1", "--no-progress"))
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split() == ["balanced", "avoid-gpt5"]
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["profiles"]) == ["balanced", "avoid-gpt5"]
    for profile in ("balanced", "avoid-gpt5"):
        assert sorted(p.stem for p in (out / profile).glob("*.jsonl")) == ids
        expected = recompute(out / profile)
        got = {k: summary["profiles"][profile][k] for k in expected}
        assert got == expected
    # The scripted world answers "Paris": right on even questions, judged wrong on odd ones.
    assert summary["profiles"]["balanced"]["right"] == 4 and summary["profiles"]["balanced"]["wrong"] == 4
    assert summary["profiles"]["balanced"]["cost_mean_usd"] is not None
    assert summary["profiles"]["avoid-gpt5"]["unpriced"] == 8  # its only answer alias has no price
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def ran_and_judged(stderr: str) -> tuple[list[str], list[str]]:
    ran = re.findall(r"\bran balanced/(\S+):", stderr)
    judged = re.findall(r"\bjudged balanced/(\S+):", stderr)
    return ran, judged


def test_resume_redoes_only_what_is_unfinished(tmp_path, capsys):
    questions, out = tmp_path / "q.jsonl", tmp_path / "out"
    ids = write_questions(questions, 6)
    assert main(eval_args(questions, out, "--limit", "4", "--no-progress")) == 0
    capsys.readouterr()
    folder = out / "balanced"
    # A kill mid-episode leaves no episode_ended; a kill after the end but before the verdict leaves no verdict.
    killed = folder / "q01.jsonl"
    killed.write_text("\n".join(killed.read_text().splitlines()[:4]) + "\n")
    unjudged = folder / "q02.jsonl"
    unjudged.write_text("\n".join(unjudged.read_text().splitlines()[:-1]) + "\n")
    untouched = {p.name: p.read_bytes() for p in (folder / "q00.jsonl", folder / "q03.jsonl")}

    assert main(eval_args(questions, out, "--no-progress")) == 0
    ran, judged = ran_and_judged(capsys.readouterr().err)
    assert sorted(ran) == ["q01", "q04", "q05"] and judged == ["q02"]
    for name, data in untouched.items():
        assert (folder / name).read_bytes() == data
    for qid in ids:
        kinds = Counter(r["type"] for r in read_lines(folder / f"{qid}.jsonl"))
        assert (kinds["header"], kinds["episode_started"], kinds["episode_ended"], kinds["judged"]) == (1, 1, 1, 1)


def test_a_new_judge_judges_what_was_left_unjudged(tmp_path, capsys):
    questions, out = tmp_path / "q.jsonl", tmp_path / "out"
    write_questions(questions, 4)
    assert main(eval_args(questions, out, "--no-progress")) == 0
    first = json.loads((out / "summary.json").read_text())["profiles"]["balanced"]
    assert (first["right"], first["unjudged"]) == (2, 2)  # the odd ones need a judge
    capsys.readouterr()
    assert main(eval_args(questions, out, "--no-progress", "--judge", "answer-1")) == 0
    ran, judged = ran_and_judged(capsys.readouterr().err)
    assert ran == [] and sorted(judged) == ["q01", "q03"]
    second = json.loads((out / "summary.json").read_text())["profiles"]["balanced"]
    assert (second["right"], second["wrong"], second["unjudged"]) == (2, 2, 0)


def start_then_kill(command: list[str], after: int, env: dict | None = None) -> list[str]:
    """Start an eval, SIGKILL it once `after` questions have finished; the ids it reported finished."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env=env)
    seen: list[str] = []
    try:
        for line in proc.stderr:  # progress and one line per finished question, as they happen
            seen += ran_and_judged(line)[0]
            if len(seen) >= after:
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stderr.close()
    assert len(seen) >= after, f"the eval ended before {after} questions finished"
    return seen


def restart_redoes_only_the_unfinished(command: list[str], folder: Path, ids: list[str], seen: list[str],
                                       env: dict | None = None) -> None:
    def ended(qid: str) -> bool:
        path = folder / f"{qid}.jsonl"
        return path.exists() and '"type": "episode_ended"' in path.read_text()

    done = {qid for qid in ids if ended(qid)}
    assert set(seen) <= done and len(done) < len(ids)  # the kill left work undone
    before = {qid: (folder / f"{qid}.jsonl").read_text() for qid in done}

    again = subprocess.run([*command, "--no-progress"], capture_output=True, text=True, timeout=7200,
                           stdin=subprocess.DEVNULL, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    ran, _ = ran_and_judged(again.stderr)
    assert sorted(ran) == sorted(set(ids) - done)  # exactly the unfinished ones, each once
    for qid in done:  # finished ones were not run again (at most their verdict was appended)
        assert (folder / f"{qid}.jsonl").read_text().startswith(before[qid])
    for qid in ids:
        kinds = Counter(r["type"] for r in read_lines(folder / f"{qid}.jsonl"))
        assert (kinds["episode_started"], kinds["episode_ended"], kinds["judged"]) == (1, 1, 1)


def test_sigkill_then_restart_redoes_only_the_unfinished_ids(tmp_path):
    questions, out = tmp_path / "q.jsonl", tmp_path / "out"
    ids = write_questions(questions, 12)
    # Each scripted call takes 0.3 s, so a question takes over a second: the kill lands mid-run.
    command = [sys.executable, "-m", "orchestra_tui", *eval_args(questions, out, "--concurrency", "2")]
    command[command.index("--scripted-latency") + 1] = "0.3"
    seen = start_then_kill(command, after=3)
    restart_redoes_only_the_unfinished(command, out / "balanced", ids, seen)
    summary = json.loads((out / "summary.json").read_text())["profiles"]["balanced"]
    expected = recompute(out / "balanced")
    assert {k: summary[k] for k in expected} == expected and summary["finished"] == 12


@pytest.mark.slow
def test_twenty_questions_on_the_embedded_default_at_concurrency_4_killed_and_resumed(tmp_path):
    questions, out = tmp_path / "q.jsonl", tmp_path / "out"
    rows = [{"id": f"e{i:02d}", "question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(20)]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if os.environ.get("ORCHESTRA_TEST_CACHE"):
        env["ORCHESTRA_TUI_CACHE_DIR"] = os.environ["ORCHESTRA_TEST_CACHE"]
    command = [sys.executable, "-m", "orchestra_tui", "eval", str(questions), "--out", str(out),
               "--concurrency", "4", "--max-rounds", "2"]
    # SIGKILL once four questions are done (four more are in flight), then run the same command again.
    seen = start_then_kill(command, after=4, env=env)
    summary_path = out / "summary.json"
    assert not summary_path.exists()  # the kill came before the end
    profile = next(p.name for p in out.iterdir() if p.is_dir())
    restart_redoes_only_the_unfinished(command, out / profile, [r["id"] for r in rows], seen, env=env)
    summary = json.loads(summary_path.read_text())["profiles"]
    assert list(summary) == [profile] and summary[profile]["finished"] == 20
    expected = recompute(out / profile)
    assert {k: summary[profile][k] for k in expected} == expected
    # Every call is priced on the embedded default (the model is free; code time has its per-second price).
    assert summary[profile]["unpriced"] == 0 and summary[profile]["cost_mean_usd"] is not None
    assert (out / "summary.png").is_file()
