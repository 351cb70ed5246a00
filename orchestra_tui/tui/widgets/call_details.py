"""What an opened tool-call row shows: arguments, query and documents, expert output, code and its output."""

from __future__ import annotations

import json

from textual.content import Content
from textual.highlight import highlight

from orchestra_tui.tui import format as fmt
from orchestra_tui.tui.state import CallView

# Long documents and outputs are cut for the screen only; trajectories keep them whole.
DOC_CHARS = 400
DOCS_SHOWN = 5
TEXT_CHARS = 6000


def _heading(text: str) -> Content:
    return Content.styled(text, "bold $accent")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more characters]"


def call_details(call: CallView) -> Content:
    status = f"{call.status} · {fmt.seconds(call.seconds)}" if call.status != "running" else "running"
    parts: list[Content] = [
        Content.assemble((f"{call.tool} · {call.alias} → {call.model} · ", "$text-muted"), (status, "bold")),
        _heading("arguments"),
        highlight(json.dumps(call.arguments, indent=2), language="json"),
    ]
    if call.ignored:
        names = ", ".join(str(c.get("name", "?")) for c in call.ignored)
        parts.append(Content.styled(f"other calls of the round, not run: {names}", "$text-muted"))
    if call.query is not None:
        source = " (expert failed; the problem itself)" if call.query_source == "problem" else ""
        parts += [_heading(f"query{source}"), Content(call.query)]
    if call.retriever is not None:
        parts.append(
            _heading(
                f"documents · {call.retriever} · {len(call.documents)} results, "
                f"{call.documents_added} new · {fmt.seconds(call.retrieval_seconds)}"
            )
        )
        for rank, doc in enumerate(call.documents[:DOCS_SHOWN], start=1):
            score = doc.get("score")
            score_text = f"{score:.3f}" if isinstance(score, (int, float)) else "–"
            parts.append(Content.assemble((f"#{rank} {doc.get('id', '?')} ({score_text}) ", "bold")))
            parts.append(Content(_cut(str(doc.get("content", "")), DOC_CHARS)))
        if len(call.documents) > DOCS_SHOWN:
            parts.append(Content.styled(f"… {len(call.documents) - DOCS_SHOWN} more", "$text-muted"))
    expert = call.expert_text
    if expert:
        took = f" · {fmt.seconds(call.expert_seconds)}" if call.expert_seconds is not None else " (streaming)"
        parts += [_heading(f"expert output · {call.alias} → {call.model}{took}"), Content(_cut(expert, TEXT_CHARS))]
    for run in call.code_runs:
        outcome = "timed out" if run.timed_out else f"exit {run.exit_code}"
        parts.append(_heading(f"code · {run.runner} · {outcome} · {fmt.seconds(run.seconds)}"))
        parts.append(highlight(run.code, language="python"))
        if run.stdout:
            parts += [_heading("stdout"), Content(_cut(run.stdout, TEXT_CHARS))]
        if run.stderr:
            parts += [_heading("stderr"), Content.styled(_cut(run.stderr, TEXT_CHARS), "$error")]
    if call.answer is not None or call.extracted_by:
        parts += [_heading(f"final answer (by {call.extracted_by})"), Content(call.answer or "(none)")]
    if call.summary:
        parts += [_heading("result"), Content(call.summary)]
    if call.error:
        parts += [_heading("error"), Content.styled(call.error, "$error")]
    tally = call.tally
    if tally.calls:
        cost = fmt.cost_label(tally.cost, tally.priced, tally.unpriced)
        unpriced = f" ({tally.unpriced} unpriced)" if tally.unpriced else ""
        parts.append(
            Content.styled(
                f"charged: {cost}{unpriced} · {tally.input_tokens} in / {tally.output_tokens} out tokens",
                "$text-muted",
            )
        )
    return Content("\n").join(parts)
