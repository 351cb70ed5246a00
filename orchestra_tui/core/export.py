"""`orchestra-tui export --format reference`: a trajectory's episodes as the reference evaluation's
per-question JSON (`id, problem, all_tool_calls, all_tool_responses, answer, all_message_responses,
correct`), so tools written for the reference's outputs read ours. The mapping is documented in
docs/TRAJECTORY.md ("Export to the reference format"); the shapes follow the reference's HLE script:
`all_tool_calls` has one entry per round the policy answered, the two dicts are keyed `turn_<step>_…`
with the 0-based step, and `answer` is the *reference* answer (the prediction sits in the answer
call's response as `pred`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from orchestra_tui.core.episode_record import EpisodeRecord, Judged, split_episodes
from orchestra_tui.core.events import (
    CodeExecuted,
    DocumentsRetrieved,
    Event,
    ExpertOutput,
    FinalAnswer,
    PolicyOutput,
    RoundRejected,
    SearchQuery,
    ToolCallStarted,
)
from orchestra_tui.core.trajectory import Trajectory

REFERENCE_FIELDS = ("id", "problem", "all_tool_calls", "all_tool_responses", "answer",
                    "all_message_responses", "correct")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(identifier: Any) -> str:
    """A question id as a file name: anything but letters, digits, dot, dash and underscore becomes `_`."""
    name = _UNSAFE.sub("_", str(identifier)).lstrip(".")
    return name or "_"


def _json_or_raw(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError:
        return text


def _chosen_index(policy: PolicyOutput | None, started: ToolCallStarted) -> int:
    """Position of the call that ran among the policy's calls (every earlier one was invalid)."""
    if policy is None:
        return 0
    for i, call in enumerate(policy.tool_calls):
        if call.get("name") == started.tool and _json_or_raw(call.get("arguments")) == started.arguments:
            return i
    return 0


def _one(events: list[Event], kind: type) -> Any:
    return next((e for e in events if isinstance(e, kind)), None)


def _tool_calls_entry(events: list[Event]) -> Any:
    """The round's entry in `all_tool_calls`, or None for a round the reference leaves no trace of."""
    policy, rejected = _one(events, PolicyOutput), _one(events, RoundRejected)
    started = _one(events, ToolCallStarted)
    if rejected is not None:
        if rejected.reason == "error":  # the reference skips a failed policy request silently
            return None
        if rejected.reason == "empty":
            return f"invalid tool calls {policy.tool_calls if policy else []}"
        label = "refused tool call" if rejected.reason == "refused" else "invalid tool call"
        return [f"{label} {c.get('name')} {c.get('arguments')}: {c.get('problem') or rejected.detail}"
                for c in rejected.calls] or [f"{label}: {rejected.detail}"]
    if started is None:
        return None
    before = started.ignored[: _chosen_index(policy, started)]
    return [*(f"invalid tool call {c.get('name')} {c.get('arguments')}: {c.get('problem')}" for c in before),
            [{"name": started.tool, "arguments": started.arguments}]]


def _tool_response(events: list[Event], started: ToolCallStarted, question_id: str, problem: str,
                   verdict: Judged | None) -> dict[str, Any]:
    expert = _one(events, ExpertOutput)
    response: dict[str, Any] = {
        "tool": started.tool, "model": started.model, "alias": started.alias, "problem": problem,
        "id": question_id, "messages": expert.messages if expert else [],
    }
    if started.tool == "enhance_reasoning":
        code = _one(events, CodeExecuted)
        response.update(generated_code=code.code if code else "", exec_result=code.stdout if code else "")
    elif started.tool == "answer":
        final = _one(events, FinalAnswer)
        response.update(response=expert.content if expert else "",
                        pred=(final.answer or "") if final else "",
                        correctness=verdict.correct if verdict else None)
    elif started.tool == "search":
        query, docs = _one(events, SearchQuery), _one(events, DocumentsRetrieved)
        response.update(query=query.query if query else None,
                        search_results_data=[r.get("content", "") for r in docs.results] if docs else [])
    return response


def reference_record(record: EpisodeRecord, verdict: Judged | None = None) -> dict[str, Any]:
    question_id = verdict.question_id if verdict else record.started.episode_id
    problem = record.started.question
    all_tool_calls: list[Any] = []
    responses: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for number in record.rounds():
        if number < 1:
            continue
        events = record.round_events(number)
        entry = _tool_calls_entry(events)
        if entry is None:
            continue
        all_tool_calls.append(entry)
        started = _one(events, ToolCallStarted)
        if started is None or _one(events, RoundRejected) is not None:
            continue
        step = number - 1
        policy = _one(events, PolicyOutput)
        calls = policy.tool_calls if policy else [{"name": started.tool, "arguments": started.arguments}]
        messages[f"turn_{step}_message"] = {
            "content": policy.content if policy else "",
            "tool_calls": [{"tool_name": c["name"], "tool_arguments": _json_or_raw(c["arguments"])} for c in calls],
        }
        responses[f"turn_{step}_response"] = [_tool_response(events, started, question_id, problem, verdict)]
    return {
        "id": question_id,
        "problem": problem,
        "all_tool_calls": all_tool_calls,
        "all_tool_responses": responses,
        "answer": verdict.reference if verdict else None,
        "all_message_responses": messages,
        "correct": verdict.correct if verdict else None,
    }


def reference_records(trajectory: Trajectory) -> list[dict[str, Any]]:
    """One reference record per episode, with its verdict when an eval judged it."""
    return [reference_record(r, r.verdict) for r in split_episodes(trajectory.events)]


def write_reference(trajectory: Trajectory, out: Path | None) -> list[Path]:
    """Write `<id>.json` per episode into `out`; without `out`, return nothing (the caller prints)."""
    written: list[Path] = []
    if out is None:
        return written
    out.mkdir(parents=True, exist_ok=True)
    for record in reference_records(trajectory):
        path = out / f"{safe_name(record['id'])}.json"
        path.write_text(json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        written.append(path)
    return written
