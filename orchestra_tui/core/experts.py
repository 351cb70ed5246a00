"""The three expert roles behind the orchestra tools (ORCHESTRATOR.md §3).

- `search`: an expert writes a `<query>`; the retriever's results become documents.
- `enhance_reasoning`: an expert writes Python; the last ```python block runs; only stdout enters the context.
- `answer`: an expert answers; the last `\\boxed{}` or `<answer>` span is the final answer.

Each role is an async generator of events. Outcomes that the loop needs (documents added, the answer)
are written into the `ToolOutcome` passed in, because an async generator cannot return a value.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from orchestra_tui.backends.base import BackendError, ChatBackend, ChatResult, TextDelta, Tokenizer
from orchestra_tui.core import prompts
from orchestra_tui.core.catalog import ExpertSpec
from orchestra_tui.core.context import Evidence, expert_context
from orchestra_tui.core.events import (
    CodeExecuted,
    DocumentsRetrieved,
    Event,
    ExpertDelta,
    ExpertOutput,
    FinalAnswer,
    Notice,
    SearchQuery,
)
from orchestra_tui.core.ledger import Ledger
from orchestra_tui.core.prompts import Variant

MAX_QUERY_CHARS = 390  # the reference cuts the query before sending it to the retriever
MIN_QUERY_CHARS = {"hle": 5, "frames": 10, "train": 10}  # shorter queries are not searched


@dataclass
class ToolOutcome:
    status: str = "ok"  # ok | empty | error
    summary: str = ""
    error: str | None = None
    answer: str | None = None
    finished: bool = False  # the episode ends (an answer call ran)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class CallScope:
    """Everything one tool call needs to know about the episode."""

    round: int
    call_id: str
    problem: str
    evidence: Evidence
    variant: Variant
    profile: str
    tokenizer: Tokenizer


def extract_query(content: str) -> str:
    return content.split("<query>")[-1].split("</query>")[0]


def extract_code(content: str) -> str:
    """The reference's rule: text after the last ```python, up to the next fence."""
    return content.split("```python")[-1].split("```")[0]


def extract_answer(content: str, style: str, fallback: bool) -> tuple[str | None, str]:
    """(answer, how it was found). Mirrors the reference's split rules."""
    if style == "boxed":
        if "\\boxed{" in content:
            answer = "}".join(content.split("\\boxed{")[-1].split("}")[:-1]).strip()
            return (answer or None), "boxed"
    elif "<answer>" in content:
        answer = content.split("<answer>")[-1].split("</answer>")[0].strip()
        return (answer or None), "answer_tag"
    elif content.strip():
        # The reference splits on <answer> even when it is absent, which yields the whole reply.
        return content.strip(), "whole_reply"
    if fallback:
        from orchestra_tui.backends.hermes import split_thinking

        _, rest = split_thinking(content)
        text = rest.strip()
        return (text or None), "fallback"
    return None, "none"


class Experts:
    def __init__(
        self,
        backends: dict[str, ChatBackend],
        ledger: Ledger,
        retriever: Any,
        code_runner: Any,
        *,
        retrieval_topk: int,
        code_timeout_s: float,
    ) -> None:
        self.backends = backends
        self.ledger = ledger
        self.retriever = retriever
        self.code_runner = code_runner
        self.retrieval_topk = retrieval_topk
        self.code_timeout_s = code_timeout_s

    async def _ask(
        self, spec: ExpertSpec, scope: CallScope, messages: list[dict[str, Any]], box: dict[str, Any]
    ) -> AsyncIterator[Event]:
        backend = self.backends[spec.backend]
        started = time.monotonic()
        result: ChatResult | None = None
        try:
            async for item in backend.stream(messages, sampling=spec.sampling):
                if isinstance(item, TextDelta):
                    yield ExpertDelta(call_id=scope.call_id, text=item.text)
                else:
                    result = item
        except BackendError as exc:
            box["error"] = str(exc)
            yield Notice(level="warning", message=f"{spec.alias} ({spec.model}) failed: {exc}")
        seconds = time.monotonic() - started
        content = result.content if result else ""
        usage = result.usage if result else None
        yield ExpertOutput(
            call_id=scope.call_id,
            messages=messages,
            content=content,
            usage=usage.to_dict() if usage else {},
            seconds=seconds,
            served_by=result.model if result else "",
        )
        yield self.ledger.charge_tokens(
            call_id=scope.call_id,
            round=scope.round,
            kind="expert",
            alias=spec.alias,
            model=spec.model,
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
            seconds=seconds,
            profile=scope.profile,
        )
        box["content"] = content if result else None

    async def run(self, spec: ExpertSpec, scope: CallScope, outcome: ToolOutcome) -> AsyncIterator[Event]:
        role = {"search": self._search, "enhance_reasoning": self._reason, "answer": self._answer}[spec.tool]
        async for event in role(spec, scope, outcome):
            yield event

    async def _search(self, spec: ExpertSpec, scope: CallScope, outcome: ToolOutcome) -> AsyncIterator[Event]:
        context = await expert_context(scope.tokenizer, scope.problem, scope.evidence, spec.limits)
        messages = prompts.query_writer_messages(context, scope.problem, scope.variant)
        box: dict[str, Any] = {}
        async for event in self._ask(spec, scope, messages, box):
            yield event
        content = box.get("content")
        if content:
            query, source = extract_query(content), "expert"
        else:
            query, source = scope.problem, "problem"
        if box.get("error"):
            # The search still runs on the problem text, as the reference does; the failure stays on record.
            outcome.error = box["error"]
        yield SearchQuery(call_id=scope.call_id, query=query, source=source)
        if len(query) < MIN_QUERY_CHARS[scope.variant]:
            outcome.status, outcome.summary = "empty", f"query too short to search ({len(query)} chars)"
            return
        started = time.monotonic()
        services = [getattr(self.retriever, "price_key", "retrieval_local")]
        try:
            if hasattr(self.retriever, "retrieve_charged"):  # web search bills each search and extraction
                results, services = await self.retriever.retrieve_charged(query[:MAX_QUERY_CHARS],
                                                                          self.retrieval_topk)
            else:
                results = await self.retriever.retrieve(query[:MAX_QUERY_CHARS], self.retrieval_topk)
        except Exception as exc:  # a retriever failure consumes the call, never the episode
            outcome.status, outcome.error = "error", f"retrieval failed: {exc}"
            outcome.summary = outcome.error
            results = []
        seconds = time.monotonic() - started
        added = scope.evidence.add_search_results([r["content"] for r in results])
        yield DocumentsRetrieved(
            call_id=scope.call_id, retriever=self.retriever.name, results=results, added=added, seconds=seconds
        )
        for service in services:
            yield self.ledger.charge_service(
                call_id=scope.call_id,
                round=scope.round,
                kind="web" if service.startswith("tavily") else "retrieval",
                service=service,
                seconds=seconds if service == services[0] else 0.0,
                profile=scope.profile,
                alias=spec.alias,
            )
        if outcome.status == "ok":
            outcome.summary = f"{len(results)} results, {added} new documents"
            if box.get("error"):
                outcome.summary += " (searched for the problem itself: the query writer failed)"
            if not results:
                outcome.status = "empty"

    async def _reason(self, spec: ExpertSpec, scope: CallScope, outcome: ToolOutcome) -> AsyncIterator[Event]:
        context = await expert_context(scope.tokenizer, scope.problem, scope.evidence, spec.limits)
        messages = prompts.coder_messages(context, scope.problem)
        box: dict[str, Any] = {}
        async for event in self._ask(spec, scope, messages, box):
            yield event
        content = box.get("content")
        if box.get("error"):
            outcome.status, outcome.error = "error", box["error"]
            outcome.summary = "the expert failed; no code ran"
            return
        code = extract_code(content) if content else ""
        if not code:
            outcome.status, outcome.summary = "empty", "the expert wrote no code"
            return
        result = await self.code_runner.run(code, timeout_s=self.code_timeout_s)
        yield CodeExecuted(
            call_id=scope.call_id,
            code=code,
            stdout=result.stdout,
            stderr=result.stderr,
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            seconds=result.seconds,
            runner=result.runner,
        )
        yield self.ledger.charge_service(
            call_id=scope.call_id,
            round=scope.round,
            kind="code",
            service="code",
            seconds=result.seconds,
            profile=scope.profile,
            alias=spec.alias,
        )
        if scope.evidence.add_code(code, result.stdout):
            outcome.summary = f"code ran, {len(result.stdout)} chars of output added"
        else:
            outcome.status = "empty"
            outcome.summary = "code timed out" if result.timed_out else "code printed nothing"

    async def _answer(self, spec: ExpertSpec, scope: CallScope, outcome: ToolOutcome) -> AsyncIterator[Event]:
        context = await expert_context(scope.tokenizer, scope.problem, scope.evidence, spec.limits)
        messages = prompts.answerer_messages(context, scope.problem, spec.answer_style, scope.variant)  # type: ignore[arg-type]
        box: dict[str, Any] = {}
        async for event in self._ask(spec, scope, messages, box):
            yield event
        content = box.get("content") or ""
        answer, how = extract_answer(content, spec.answer_style, spec.answer_fallback)
        # An answer call ends the episode even when the expert produced nothing (as the reference does).
        outcome.finished = True
        outcome.answer = answer
        if box.get("error"):
            outcome.status, outcome.error = "error", box["error"]
        elif answer is None:
            outcome.status = "empty"
        outcome.summary = answer if answer is not None else "no answer extracted"
        yield FinalAnswer(call_id=scope.call_id, alias=spec.alias, model=spec.model, answer=answer, extracted_by=how)
