"""The orchestra episode loop (ORCHESTRATOR.md §2): stateless rounds until an expert answers.

Each round the policy gets a fresh two-message chat built from the problem and the evidence gathered so
far; its earlier thinking and calls are never replayed. Only the first valid call of a round runs; an
empty, invalid or refused output consumes the round and is recorded. `answer` ends the episode.

The profile shapes each round (steering.py): withheld aliases vanish from the tool descriptions, a call
to one anyway is refused, and every call reserves its worst-case cost before it runs.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from orchestra_tui.backends.base import BackendError, ChatBackend, ChatResult, TextDelta
from orchestra_tui.backends.breaker import backend_unavailable
from orchestra_tui.backends.repair import repair_tool_calls
from orchestra_tui.core import prompts
from orchestra_tui.core.catalog import Catalog
from orchestra_tui.core.context import Evidence, policy_context
from orchestra_tui.core.events import (
    EpisodeEnded,
    EpisodeStarted,
    Event,
    Notice,
    PolicyDelta,
    PolicyOutput,
    ProfileSwitched,
    RoundRejected,
    RoundStarted,
    ToolCallFinished,
    ToolCallStarted,
)
from orchestra_tui.core.experts import CallScope, Experts, ToolOutcome
from orchestra_tui.core.ledger import Ledger, usd_text
from orchestra_tui.core.prompts import Variant
from orchestra_tui.core.steering import Steering, allowed_by_tool, cost_of
from orchestra_tui.core.tool_descriptions import alias_prices, regenerate_tools
from orchestra_tui.core.toolset import check_call, first_valid, offered_tools

MAX_POLICY_FAILURES = 3  # consecutive backend failures end the episode instead of looping silently


@dataclass(frozen=True)
class EpisodeSettings:
    variant: Variant = prompts.DEFAULT_VARIANT
    max_rounds: int = 50
    one_search: bool | None = None  # None: the variant decides (FRAMES offers search once)
    repair_tool_calls: bool = False  # off: the reference consumes a round with no valid call (repair.py)

    @property
    def search_once(self) -> bool:
        return self.variant == "frames" if self.one_search is None else self.one_search


def _min_limit(*limits: Decimal | None) -> Decimal | None:
    known = [x for x in limits if x is not None]
    return min(known) if known else None


class _Stop(Exception):
    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status


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
        steering: Steering,
        evidence: Evidence | None = None,
        resume_after: int | None = None,
        elapsed_s: float = 0.0,
        prior_entries: int = 0,
    ) -> None:
        # A fork continues a recorded episode after round `resume_after`: its opening event and those
        # rounds were copied into the trajectory; their `elapsed_s` and their `prior_entries` ledger
        # entries (already in the ledger) count toward this episode's latency and cost.
        self.resume_after = resume_after
        self.id = uuid.uuid4().hex[:12]
        self.question = question
        self.base_problem = problem
        self.catalog = catalog
        self.tools = tools
        self.policy = policy
        self.experts = experts
        self.ledger = ledger
        self.settings = settings
        self.steering = steering
        self.evidence = evidence or Evidence()
        self.rounds = resume_after or 0
        self.answer: str | None = None
        self._started = time.monotonic() - elapsed_s
        self._first_entry = len(ledger.entries) - prior_entries
        self._statement = self._preference()

    @property
    def profile(self) -> str:
        return self.steering.profile.name

    @property
    def problem(self) -> str:
        return prompts.with_preference(self.base_problem, self._statement)

    def _preference(self) -> str | None:
        return self.steering.profile.preference_statement(self.steering.infos(self.catalog))

    def ended(self, status: str, error: str | None = None) -> EpisodeEnded:
        totals = self.ledger.totals(self.ledger.entries[self._first_entry :])
        cost = totals.known_cost
        return EpisodeEnded(
            status=status,
            answer=self.answer,
            rounds=self.rounds,
            cost_usd=usd_text(cost),
            latency_s=time.monotonic() - self._started,
            error=error,
        )

    async def run(self) -> AsyncIterator[Event]:
        if self.resume_after is None:
            yield EpisodeStarted(
                episode_id=self.id,
                question=self.question,
                problem=self.problem,
                variant=self.settings.variant,
                max_rounds=self.settings.max_rounds,
                profile=self.profile,
                policy={"backend": self.catalog.backends[self.catalog.policy.backend].get("kind", self.policy.kind),
                    "model": self.catalog.policy.model},
                preference=self._statement,
                withheld=self.steering.withheld(self.catalog),
            )
        failures = 0
        for number in range((self.resume_after or 0) + 1, self.settings.max_rounds + 1):
            self.rounds = number
            outcome = ToolOutcome()
            try:
                async for event in self._round(number, outcome):
                    yield event
            except _Stop as stop:
                yield Notice(level="warning", message=str(stop))
                yield self.ended(stop.status, str(stop))
                return
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

    # --- one round ---------------------------------------------------------------------------------

    def _apply_pending_switch(self, number: int) -> ProfileSwitched | None:
        new = self.steering.pending
        if new is None:
            return None
        old = self.steering.profile
        self.steering.pending = None
        self.steering.profile = new
        self.steering.budget.set_limit(_min_limit(new.budget.usd_per_question, self.steering.max_cost))
        if self.steering.budget.parent is not None:
            self.steering.budget.parent.set_limit(new.budget.usd_per_session)
        self.steering.counts.limit_of = new.budget.calls_limit
        self._statement = self._preference()
        return ProfileSwitched(round=number, old=old.name, new=new.name,
                               withheld=self.steering.withheld(self.catalog), preference=self._statement)

    async def _round(self, number: int, outcome: ToolOutcome) -> AsyncIterator[Event]:
        if (switched := self._apply_pending_switch(number)) is not None:
            yield switched
        steering, prices = self.steering, self.ledger.prices
        variant = self.settings.variant
        sampling = steering.profile.apply_sampling(self.catalog.policy.sampling)

        # Reserve the policy round first, bounded by the full tool list (what is offered can only be smaller).
        limits = self.catalog.policy.limits(variant)
        context = await policy_context(self.policy.tokenizer, self.problem, self.evidence, variant, limits)
        messages = prompts.orchestrator_messages(self.problem, context.text, variant)
        policy_cost = steering.policy_worst_case(
            self.catalog.policy.model, [m["content"] for m in messages] + [json.dumps(self.tools)],
            sampling.max_tokens, prices)
        policy_hold = steering.budget.reserve(policy_cost, f"round {number} policy")

        withheld = steering.withheld(self.catalog)
        for alias, spec in self.catalog.experts.items():
            # An endpoint whose circuit breaker is open: withheld until it reopens, like a missing key.
            if alias not in withheld and (why := backend_unavailable(self.experts.backends.get(spec.backend))):
                withheld[alias] = f"unavailable: {why}"
        usable = [a for a in self.catalog.experts if a not in withheld]
        if not usable:
            if policy_hold is not None:
                steering.budget.release(policy_hold)
            reasons = "; ".join(f"{a}: {why}" for a, why in sorted(withheld.items()))
            raise _Stop("error", f"no alias may be used ({reasons})")
        worst = steering.expert_worst_cases({a: self.catalog.experts[a] for a in usable}, self.problem,
                                            self.evidence, prices)
        affordable = steering.budget.affordable(worst) if policy_hold is not None else set()
        for alias in usable:
            if alias not in affordable:
                withheld[alias] = "over budget"
        if policy_hold is None or not affordable:
            if policy_hold is not None:
                steering.budget.release(policy_hold)
            async for event in self._last_resort(number, worst, outcome):
                yield event
            return

        allowed = allowed_by_tool(self.catalog, affordable)
        regenerated = regenerate_tools(
            self.tools, allowed, alias_prices({a: e.model for a, e in self.catalog.experts.items()}, prices.model))
        tools = offered_tools(regenerated, have_documents=bool(self.evidence.documents),
                              one_search=self.settings.search_once)
        yield RoundStarted(round=number, messages=messages, tools=tools, context_tokens=context.tokens)

        result = None
        async for event in self._ask_policy(number, messages, tools, sampling, outcome):
            if isinstance(event, ChatResult):
                result = event
            else:
                yield event
        spent = [e for e in self.ledger.entries if e.call_id == f"r{number}-policy"]
        steering.budget.reconcile(policy_hold, cost_of(spent))
        if result is None:
            return

        if not result.tool_calls:
            yield RoundRejected(round=number, reason="empty", detail="the policy made no tool call")
            return
        checked = [check_call(c, self.catalog.aliases()) for c in result.tool_calls]
        chosen, others = first_valid(checked)
        if chosen is None:
            yield RoundRejected(round=number, reason="invalid", detail=checked[0].problem or "invalid call",
                                calls=[c.to_dict() for c in checked])
            return
        if chosen.alias not in affordable:
            # Never overridden silently: the policy asked for a withheld alias; the round is consumed.
            yield RoundRejected(round=number, reason="refused",
                                detail=f"{chosen.alias}: {withheld.get(chosen.alias, 'withheld')}",
                                calls=[c.to_dict() for c in checked])
            return
        async for event in self._run_call(number, chosen.alias, worst[chosen.alias], outcome,
                                          arguments=chosen.arguments or {}, ignored=[c.to_dict() for c in others]):
            yield event

    async def _ask_policy(self, number: int, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                          sampling: Any, outcome: ToolOutcome) -> AsyncIterator[Any]:
        started = time.monotonic()
        result: ChatResult | None = None
        try:
            async for item in self.policy.stream(messages, tools=tools, sampling=sampling,
                                                 constrain_tool_call=self.catalog.policy.constrain_tool_call):
                if isinstance(item, TextDelta):
                    yield PolicyDelta(round=number, text=item.text)
                else:
                    result = item
        except BackendError as exc:
            outcome.error = "policy"
            yield self.ledger.charge_tokens(
                call_id=f"r{number}-policy", round=number, kind="policy", alias=None,
                model=self.catalog.policy.model, input_tokens=0, output_tokens=0,
                seconds=time.monotonic() - started, profile=self.profile)
            yield RoundRejected(round=number, reason="error", detail=str(exc))
            return
        seconds = time.monotonic() - started
        assert result is not None
        repaired = None
        if self.settings.repair_tool_calls and not any(
                check_call(c, self.catalog.aliases()).valid for c in result.tool_calls):
            # Only a round that would be rejected is repaired; a valid call is never second-guessed.
            if (fix := repair_tool_calls(result.content)) is not None:
                result, repaired = dataclasses.replace(result, tool_calls=fix.calls), fix.note
        from orchestra_tui.backends.hermes import split_thinking

        reasoning, _ = split_thinking(result.content)
        yield PolicyOutput(
            round=number,
            content=result.content,
            reasoning=result.reasoning or reasoning,
            tool_calls=[{"name": c.name, "arguments": c.arguments} for c in result.tool_calls],
            usage=result.usage.to_dict(),
            seconds=seconds,
            repaired=repaired,
        )
        yield self.ledger.charge_tokens(
            call_id=f"r{number}-policy", round=number, kind="policy", alias=None,
            model=self.catalog.policy.model, input_tokens=result.usage.prompt_tokens,
            output_tokens=result.usage.completion_tokens, seconds=seconds, profile=self.profile)
        yield result

    async def _last_resort(self, number: int, worst: dict[str, Decimal | None], outcome: ToolOutcome
                           ) -> AsyncIterator[Event]:
        """Nothing affordable is left: answer through the cheapest allowed answer alias if it fits, else stop."""
        answers = {a: c for a, c in worst.items() if self.catalog.experts[a].tool == "answer"}
        cheapest = self.steering.budget.cheapest(answers)
        if cheapest is None:
            raise _Stop("budget", "budget exhausted: no affordable call is left")
        yield Notice(level="warning", message=f"budget nearly exhausted: answering with the cheapest allowed "
                                              f"alias {cheapest} without asking the policy")
        async for event in self._run_call(number, cheapest, worst[cheapest], outcome, arguments={"model": cheapest},
                                          ignored=[]):
            yield event
        if outcome.finished and self.answer is None:
            raise _Stop("budget", "budget exhausted; the last affordable answer produced nothing")

    async def _run_call(self, number: int, alias: str, worst: Decimal | None, outcome: ToolOutcome, *,
                        arguments: dict[str, Any], ignored: list[dict[str, Any]]) -> AsyncIterator[Event]:
        spec = self.catalog.experts[alias]
        hold = self.steering.budget.reserve(worst, f"round {number} {alias}")
        if hold is None:  # cannot happen after the policy's reconcile freed money; kept as a hard stop
            raise _Stop("budget", f"budget exhausted before {alias} could run")
        call_id = f"r{number}-{spec.tool}"
        yield ToolCallStarted(round=number, call_id=call_id, tool=spec.tool, alias=alias, model=spec.model,
                              arguments=arguments, ignored=ignored)
        scope = CallScope(round=number, call_id=call_id, problem=self.problem, evidence=self.evidence,
                          variant=self.settings.variant, profile=self.profile, tokenizer=self.policy.tokenizer)
        started = time.monotonic()
        try:
            async for event in self.experts.run(spec, scope, outcome):
                yield event
        finally:
            overrun = self.steering.budget.reconcile(
                hold, cost_of([e for e in self.ledger.entries if e.call_id == call_id]))
            self.steering.counts.record(alias)
        if overrun:
            yield Notice(level="warning", message=f"{alias} cost ${overrun} more than its reserved worst case")
        if outcome.finished:
            self.answer = outcome.answer
        yield ToolCallFinished(call_id=call_id, status=outcome.status, summary=outcome.summary,
                               seconds=time.monotonic() - started, error=outcome.error)
