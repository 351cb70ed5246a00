"""The orchestra episode loop (ORCHESTRATOR.md §2): stateless rounds until an expert answers.

Each round the policy gets a fresh two-message chat built from the problem and the evidence gathered so
far; its earlier thinking and calls are never replayed. Only the first valid call of a round runs; an
empty or invalid output consumes the round and is recorded. `answer` ends the episode.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from orchestra_tui.backends.base import BackendError, ChatBackend, ChatResult, TextDelta
from orchestra_tui.core import prompts
from orchestra_tui.core.catalog import Catalog
from orchestra_tui.core.context import Evidence, policy_context
from orchestra_tui.core.events import (
    EpisodeEnded,
    EpisodeStarted,
    Event,
    PolicyDelta,
    PolicyOutput,
    RoundRejected,
    RoundStarted,
    ToolCallFinished,
    ToolCallStarted,
)
from orchestra_tui.core.experts import CallScope, Experts, ToolOutcome
from orchestra_tui.core.ledger import Ledger
from orchestra_tui.core.prompts import Variant
from orchestra_tui.core.toolset import check_call, first_valid, offered_tools

MAX_POLICY_FAILURES = 3  # consecutive backend failures end the episode instead of looping silently


@dataclass(frozen=True)
class EpisodeSettings:
    variant: Variant = prompts.DEFAULT_VARIANT
    max_rounds: int = 50
    one_search: bool | None = None  # None: the variant decides (FRAMES offers search once)

    @property
    def search_once(self) -> bool:
        return self.variant == "frames" if self.one_search is None else self.one_search


class Episode:
    def __init__(
        self,
        *,
        question: str,
        problem: str,
        catalog: Catalog,
        tools: list[dict[str, Any]],
        policy: ChatBackend,
        experts: Experts,
        ledger: Ledger,
        settings: EpisodeSettings,
        profile: str,
        evidence: Evidence | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.question = question
        self.problem = problem
        self.catalog = catalog
        self.tools = tools
        self.policy = policy
        self.experts = experts
        self.ledger = ledger
        self.settings = settings
        self.profile = profile
        self.evidence = evidence or Evidence()
        self.rounds = 0
        self.answer: str | None = None
        self._started = time.monotonic()
        self._first_entry = len(ledger.entries)

    def ended(self, status: str, error: str | None = None) -> EpisodeEnded:
        totals = self.ledger.totals(self.ledger.entries[self._first_entry :])
        cost = totals.known_cost
        return EpisodeEnded(
            status=status,
            answer=self.answer,
            rounds=self.rounds,
            cost_usd=None if cost is None else str(cost),
            latency_s=time.monotonic() - self._started,
            error=error,
        )

    async def run(self) -> AsyncIterator[Event]:
        yield EpisodeStarted(
            episode_id=self.id,
            question=self.question,
            problem=self.problem,
            variant=self.settings.variant,
            max_rounds=self.settings.max_rounds,
            profile=self.profile,
            policy={"backend": self.policy.kind, "model": self.catalog.policy.model},
        )
        failures = 0
        for number in range(1, self.settings.max_rounds + 1):
            self.rounds = number
            outcome = ToolOutcome()
            async for event in self._round(number, outcome):
                yield event
            if outcome.error == "policy":
                failures += 1
                if failures >= MAX_POLICY_FAILURES:
                    yield self.ended("error", f"the policy failed {failures} rounds in a row")
                    return
                continue
            failures = 0
            if outcome.finished:
                yield self.ended("answered" if self.answer is not None else "no_answer")
                return
        yield self.ended("no_answer", f"no answer after {self.settings.max_rounds} rounds")

    async def _round(self, number: int, outcome: ToolOutcome) -> AsyncIterator[Event]:
        variant = self.settings.variant
        limits = self.catalog.policy.limits(variant)
        context = await policy_context(self.policy.tokenizer, self.problem, self.evidence, variant, limits)
        messages = prompts.orchestrator_messages(self.problem, context.text, variant)
        tools = offered_tools(self.tools, have_documents=bool(self.evidence.documents),
                              one_search=self.settings.search_once)
        yield RoundStarted(round=number, messages=messages, tools=tools, context_tokens=context.tokens)

        started = time.monotonic()
        result: ChatResult | None = None
        try:
            async for item in self.policy.stream(
                messages,
                tools=tools,
                sampling=self.catalog.policy.sampling,
                constrain_tool_call=self.catalog.policy.constrain_tool_call,
            ):
                if isinstance(item, TextDelta):
                    yield PolicyDelta(round=number, text=item.text)
                else:
                    result = item
        except BackendError as exc:
            outcome.error = "policy"
            yield self.ledger.charge_tokens(
                call_id=f"r{number}-policy", round=number, kind="policy", alias=None,
                model=self.catalog.policy.model, input_tokens=0, output_tokens=0,
                seconds=time.monotonic() - started, profile=self.profile,
            )
            yield RoundRejected(round=number, reason="error", detail=str(exc))
            return
        seconds = time.monotonic() - started
        assert result is not None
        from orchestra_tui.backends.hermes import split_thinking

        reasoning, _ = split_thinking(result.content)
        yield PolicyOutput(
            round=number,
            content=result.content,
            reasoning=result.reasoning or reasoning,
            tool_calls=[{"name": c.name, "arguments": c.arguments} for c in result.tool_calls],
            usage=result.usage.to_dict(),
            seconds=seconds,
        )
        yield self.ledger.charge_tokens(
            call_id=f"r{number}-policy", round=number, kind="policy", alias=None,
            model=self.catalog.policy.model, input_tokens=result.usage.prompt_tokens,
            output_tokens=result.usage.completion_tokens, seconds=seconds, profile=self.profile,
        )

        if not result.tool_calls:
            yield RoundRejected(round=number, reason="empty", detail="the policy made no tool call")
            return
        checked = [check_call(c, self.catalog.aliases()) for c in result.tool_calls]
        chosen, others = first_valid(checked)
        if chosen is None:
            yield RoundRejected(round=number, reason="invalid", detail=checked[0].problem or "invalid call",
                                calls=[c.to_dict() for c in checked])
            return

        spec = self.catalog.experts[chosen.alias]  # type: ignore[index]
        call_id = f"r{number}-{chosen.tool}"
        yield ToolCallStarted(round=number, call_id=call_id, tool=spec.tool, alias=spec.alias, model=spec.model,
                              arguments=chosen.arguments or {}, ignored=[c.to_dict() for c in others])
        scope = CallScope(round=number, call_id=call_id, problem=self.problem, evidence=self.evidence,
                          variant=variant, profile=self.profile, tokenizer=self.policy.tokenizer)
        call_started = time.monotonic()
        async for event in self.experts.run(spec, scope, outcome):
            yield event
        if outcome.finished:
            self.answer = outcome.answer
        yield ToolCallFinished(call_id=call_id, status=outcome.status, summary=outcome.summary,
                               seconds=time.monotonic() - call_started, error=outcome.error)
