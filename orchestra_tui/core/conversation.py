"""The conversational function-calling loop (τ²-bench setting, ORCHESTRATOR.md §7).

Unlike the stateless orchestra rounds, this is an ordinary multi-turn chat: the policy sees the system
prompt and the whole history, and each reply is either a message to the user or tool calls. Calls run in
order, their results come back as `role: "tool"` messages, and the policy replies again, until it
writes a message. At most 6 calls of one reply are kept (the reference's cap). `call_expert(expert)`
hands the conversation and the declared tools to an expert model; the expert's reply replaces the
policy's, and its own calls run as the policy's would have.

Every message that enters the history is a `ConversationMessage` event, so a trajectory holds the chat
verbatim, tool results included; every policy, expert and function call is charged through the ledger.
A turn that fails or is cancelled is recorded, then removed from what the policy sees next.

Tiny models need a grammar to write a well-formed call, but a grammar that admits only a call would
never let them speak; so when the catalog asks for `constrain_tool_call`, only the first reply of each
user turn is constrained, and later replies are free to be a `<message>`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestra_tui import __version__
from orchestra_tui.backends.base import BackendError, ChatBackend, ChatResult, TextDelta, ToolCall
from orchestra_tui.backends.hermes import split_thinking
from orchestra_tui.core import prompts
from orchestra_tui.core.availability import alias_problems, backend_problems
from orchestra_tui.core.catalog import Catalog, load_catalog, with_policy_backend
from orchestra_tui.core.conversation_setup import Offer, make_offer, middle_cut, policy_sampling, visible_text
from orchestra_tui.core.events import (
    Charged, ConversationMessage, ConversationStarted, Event, ExpertDelta, ExpertOutput, FunctionCallFinished,
    FunctionCallStarted, Notice, PolicyDelta, PolicyOutput, TurnEnded, TurnStarted,
)
from orchestra_tui.core.function_runner import CommandRunner, FunctionRunner
from orchestra_tui.core.function_tools import FunctionToolSet
from orchestra_tui.core.ledger import Ledger, PriceBook, usd_text
from orchestra_tui.core.profiles import default_profile_name, find_profile
from orchestra_tui.core.trajectory import TrajectoryWriter, new_trajectory_path
from orchestra_tui.paths import trajectories_dir

MAX_CALLS_PER_REPLY = 6  # the reference keeps the first six calls of a reply
REFERENCE_CONTEXT_TOKENS = 23000  # the reference cuts the middle of the chat beyond this, less the tools
EXPERT_TOOL = "call_expert"
__all__ = ["Conversation", "ConversationOptions", "visible_text"]


@dataclass
class ConversationOptions:
    catalog: str | Path | None = None  # None: the profile's catalog, else the embedded one
    profile: str | None = None
    policy_backend: dict[str, Any] | None = None  # replaces the catalog's policy backend (--model/--base-url)
    call_expert: bool | None = None  # None: the declarations file decides (default on)
    max_steps: int = 10  # policy replies per user turn before the turn is given up
    unsafe_commands: bool = False  # run `command` tools bare when no sandbox works
    check_endpoints: bool = True
    trajectory: Path | None = None
    record: bool = True


@dataclass
class _Reply:
    content: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    error: str | None = None


@dataclass
class _Turn:
    number: int
    started: float
    first_entry: int
    steps: int = 0
    calls: int = 0


class Conversation:
    def __init__(self, functions: FunctionToolSet, options: ConversationOptions | None = None, *,
                 catalog: Catalog | None = None, backends: dict[str, ChatBackend] | None = None,
                 prices: PriceBook | None = None, runner: FunctionRunner | None = None) -> None:
        self.functions = functions
        self.options = options or ConversationOptions()
        self.profile = find_profile(self.options.profile or default_profile_name())
        self.catalog = catalog or load_catalog(self.options.catalog or self.profile.catalog or "embedded")
        if self.options.policy_backend:
            self.catalog = with_policy_backend(self.catalog, self.options.policy_backend)
        self.prices = prices or PriceBook.default()
        self.prices.merge(self.catalog.prices, origin=f"{self.catalog.path.name} [prices]")
        self.prices.merge(functions.price_table(), origin=functions.path.name)
        self.ledger = Ledger(self.prices)
        self.runner = runner or FunctionRunner(commands=CommandRunner(unsafe=self.options.unsafe_commands))
        self.history: list[dict[str, Any]] = []  # what follows the system message
        self.offer: Offer | None = None  # experts, tools and system prompt; settled by the first turn
        self._backends = dict(backends or {})
        self._tokens: list[int] = []  # policy tokens per history message, filled lazily
        self._fixed_tokens: int | None = None
        self._writer: TrajectoryWriter | None = None
        self.turns = 0
        self.steps = 0  # policy replies over the whole conversation: the `round` of shared events
        self.sampling = policy_sampling(self.catalog, self.profile)
        self.context_tokens = self.catalog.policy.limit_overrides.get("context_tokens", REFERENCE_CONTEXT_TOKENS)

    @property
    def trajectory_path(self) -> Path | None:
        return self._writer.path if self._writer else None

    def _backend(self, name: str) -> ChatBackend:
        if name not in self._backends:
            from orchestra_tui.backends.factory import make_backend

            self._backends[name] = make_backend(self.catalog.backends[name])
        return self._backends[name]

    @property
    def policy(self) -> ChatBackend:
        return self._backend(self.catalog.policy.backend)

    @property
    def _offered(self) -> Offer:
        if self.offer is None:  # only reachable from inside a turn, after _start
            raise RuntimeError("the conversation has not started")
        return self.offer

    # --- start: which experts, which tools, which prompt --------------------------------------------

    async def _start(self) -> list[Event]:
        problems = await backend_problems(self.catalog, probe=self.options.check_endpoints, skip=set(self._backends))
        if self.catalog.policy.backend in problems:
            raise RuntimeError(f"the policy backend is unavailable: {problems[self.catalog.policy.backend]}")
        wanted = self.functions.call_expert if self.options.call_expert is None else self.options.call_expert
        offer = make_offer(self.functions, self.catalog, self.profile, self.prices,
                           alias_problems(self.catalog, problems), wanted)
        self._open_trajectory()
        started = ConversationStarted(
            conversation_id=uuid.uuid4().hex[:12], system=offer.system, tools=offer.tools,
            experts={e: {"alias": a, "model": self.catalog.experts[a].model} for e, a in offer.experts.items()},
            functions=self.functions.path.name, policy={"backend": self.policy.kind, "model": self.catalog.policy.model},
            withheld=offer.withheld)
        self.offer = offer
        return [started, *(Notice(level="warning", message=f"{e} not offered — {why}")
                           for e, why in offer.withheld.items() if wanted)]

    def _open_trajectory(self) -> None:
        if self._writer is not None or not self.options.record:
            return
        path = self.options.trajectory or new_trajectory_path(trajectories_dir(), f"chat-{self.catalog.name}")
        from orchestra_tui.core.session import _public_backend

        self._writer = TrajectoryWriter(path, {
            "app_version": __version__, "mode": "conversation", "catalog": self.catalog.name,
            "catalog_hash": self.catalog.digest, "functions": self.functions.path.name,
            "functions_hash": self.functions.digest, "profile": self.profile.name,
            "backends": {n: _public_backend(s) for n, s in self.catalog.backends.items()},
            "policy_backend": self.catalog.policy.backend})

    def _emit(self, event: Event) -> Event:
        if self._writer is not None:
            self._writer.write(event)
        return event

    # --- a user turn ---------------------------------------------------------------------------------

    async def turn(self, user_text: str) -> AsyncIterator[Event]:
        """One user message and everything up to the policy's reply. Every event is written to the
        trajectory before the consumer sees it."""
        self.turns += 1
        state = _Turn(self.turns, time.monotonic(), len(self.ledger.entries))
        mark = len(self.history)
        finished = False
        try:
            if self.offer is None:
                for event in await self._start():
                    yield self._emit(event)
            async for event in self._run(state, user_text):
                if isinstance(event, TurnEnded):
                    finished = True
                    if event.status == "error":
                        self._rollback(mark)
                yield self._emit(event)
        except Exception as exc:  # never lose the trajectory to a bug or a broken part: record, end cleanly
            finished = True
            self._rollback(mark)
            yield self._emit(self._ended(state, "error", None, f"{type(exc).__name__}: {exc}"))
        finally:
            if not finished:  # cancelled, or the consumer stopped listening: recorded, then forgotten
                self._rollback(mark)
                self._emit(self._ended(state, "cancelled", None))

    def _rollback(self, mark: int) -> None:
        del self.history[mark:]
        del self._tokens[mark:]

    def _ended(self, state: _Turn, status: str, message: str | None, error: str | None = None) -> TurnEnded:
        cost = self.ledger.totals(self.ledger.entries[state.first_entry:]).known_cost
        return TurnEnded(turn=state.number, status=status, message=message, steps=state.steps, calls=state.calls,
                         cost_usd=usd_text(cost), latency_s=time.monotonic() - state.started,
                         error=error)

    def _add(self, turn: int, message: dict[str, Any], **extra: Any) -> ConversationMessage:
        self.history.append(message)
        return ConversationMessage(turn=turn, role=message["role"], content=message["content"],
                                   tool_call_id=message.get("tool_call_id"),
                                   tool_calls=message.get("tool_calls", []), **extra)

    async def _run(self, state: _Turn, user_text: str) -> AsyncIterator[Event]:
        yield TurnStarted(turn=state.number, user_text=user_text)
        yield self._add(state.number, {"role": "user", "content": user_text})
        for index in range(1, self.options.max_steps + 1):
            self.steps += 1
            state.steps = index
            step = self.steps
            reply, source = _Reply(), "policy"
            constrain = self.catalog.policy.constrain_tool_call and index == 1
            async for event in self._ask_policy(step, constrain, reply):
                yield event
            if reply.error is not None:
                yield self._ended(state, "error", None, f"the policy failed: {reply.error}")
                return
            expert = self._expert_of(reply.calls)
            if expert is not None:
                state.calls += 1
                reply, source = _Reply(), expert
                async for event in self._ask_expert(state.number, step, expert, reply):
                    yield event
            text = visible_text(reply.content)
            kept, dropped = reply.calls[:MAX_CALLS_PER_REPLY], reply.calls[MAX_CALLS_PER_REPLY:]
            ids = [f"s{step}-c{i}" for i in range(1, len(kept) + 1)]
            message: dict[str, Any] = {"role": "assistant", "content": text or ("" if kept else prompts.EMPTY_REPLY)}
            if kept:
                message["tool_calls"] = [{"id": i, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                                         for i, c in zip(ids, kept)]
            yield self._add(state.number, message, source=source,
                            dropped_calls=[{"name": c.name, "arguments": c.arguments} for c in dropped])
            if dropped:
                yield Notice(level="warning", message=f"kept the first {MAX_CALLS_PER_REPLY} of "
                                                      f"{len(reply.calls)} tool calls")
            if not kept:
                if not text:
                    yield Notice(level="warning", message="the reply held neither a message nor a tool call")
                yield self._ended(state, "answered" if text else "empty", message["content"])
                return
            for call_id, call in zip(ids, kept):
                state.calls += 1
                async for event in self._run_call(state.number, step, call_id, call):
                    yield event
        yield self._ended(state, "max_steps", None, f"no message to the user after {self.options.max_steps} replies")

    def _expert_of(self, calls: list[ToolCall]) -> str | None:
        """The expert of the reply's first valid call_expert call (any position: the reference looks at
        every call before applying the cap)."""
        for call in calls:
            if call.name != EXPERT_TOOL:
                continue
            try:
                expert = json.loads(call.arguments).get("expert")
            except (ValueError, AttributeError):
                continue
            if isinstance(expert, str) and expert in self._offered.experts:
                return expert
        return None

    # --- the calls -----------------------------------------------------------------------------------

    async def _fit(self, messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        """The history cut in the middle to the token budget, as the reference does; (messages, cut)."""
        for message in self.history[len(self._tokens):]:
            self._tokens.append(await self._count(json.dumps(message, ensure_ascii=False)))
        if self._fixed_tokens is None:
            self._fixed_tokens = await self._count(self._offered.system + json.dumps(self._offered.tools))
        head, tail = middle_cut(self._tokens[: len(messages)], self.context_tokens - self._fixed_tokens)
        if not tail:
            return list(messages), 0
        return [*messages[:head], *messages[len(messages) - tail:]], len(messages) - head - tail

    async def _count(self, text: str) -> int:
        try:
            return len(await self.policy.tokenizer.encode(text))
        except BackendError:
            # A server without a tokenize endpoint: the cut is approximate anyway, so estimate on the
            # high side (about three characters a token) rather than fail the turn.
            return len(text) // 3 + 1

    async def _ask_policy(self, step: int, constrain: bool, reply: _Reply) -> AsyncIterator[Event]:
        history, cut = await self._fit(self.history)
        if cut:
            yield Notice(level="info", message=f"context: {cut} middle messages left out for the policy")
        messages = [{"role": "system", "content": self._offered.system}, *history]
        started = time.monotonic()
        result: ChatResult | None = None
        try:
            async for item in self.policy.stream(messages, tools=self._offered.tools, sampling=self.sampling,
                                                 constrain_tool_call=constrain):
                if isinstance(item, TextDelta):
                    yield PolicyDelta(round=step, text=item.text)
                else:
                    result = item
        except BackendError as exc:
            reply.error = str(exc)
        seconds = time.monotonic() - started
        if result is not None:
            reasoning, _ = split_thinking(result.content)
            yield PolicyOutput(round=step, content=result.content, reasoning=result.reasoning or reasoning,
                               tool_calls=[{"name": c.name, "arguments": c.arguments} for c in result.tool_calls],
                               usage=result.usage.to_dict(), seconds=seconds)
            reply.content, reply.calls = result.content, list(result.tool_calls)
        elif reply.error is None:
            reply.error = "the backend ended without a result"
        usage = result.usage if result is not None else None
        yield self.ledger.charge_tokens(
            call_id=f"s{step}-policy", round=step, kind="policy", alias=None, model=self.catalog.policy.model,
            input_tokens=usage.prompt_tokens if usage else 0, output_tokens=usage.completion_tokens if usage else 0,
            seconds=seconds, profile=self.profile.name)

    async def _ask_expert(self, turn: int, step: int, expert: str, reply: _Reply) -> AsyncIterator[Event]:
        spec = self.catalog.experts[self._offered.experts[expert]]
        call_id = f"s{step}-expert"
        yield FunctionCallStarted(turn=turn, step=step, call_id=call_id, name=EXPERT_TOOL,
                                  arguments=f'{{"expert": "{expert}"}}', executor="expert",
                                  target=f"{spec.alias} ({spec.model})")
        history, _ = await self._fit(self.history)
        messages = prompts.conversation_expert_messages(self._offered.expert_system, history, spec.model)
        started = time.monotonic()
        result: ChatResult | None = None
        error = None
        try:
            async for item in self._backend(spec.backend).stream(messages, tools=self._offered.expert_tools or None,
                                                                 sampling=spec.sampling):
                if isinstance(item, TextDelta):
                    yield ExpertDelta(call_id=call_id, text=item.text)
                else:
                    result = item
        except BackendError as exc:
            error = str(exc)
        seconds = time.monotonic() - started
        if result is not None:
            yield ExpertOutput(call_id=call_id, messages=messages, content=result.content,
                               usage=result.usage.to_dict(), seconds=seconds, served_by=result.model)
            # An expert is not offered call_expert; one it writes anyway runs as an unknown tool would.
            reply.content, reply.calls = result.content, list(result.tool_calls)
        else:
            # The reference's stand-in reply when the expert call fails: the user is asked to wait.
            error = error or "the backend ended without a result"
            reply.content = prompts.EMPTY_REPLY
        yield self.ledger.charge_tokens(
            call_id=call_id, round=step, kind="expert", alias=spec.alias, model=spec.model,
            input_tokens=result.usage.prompt_tokens if result else 0,
            output_tokens=result.usage.completion_tokens if result else 0, seconds=seconds, profile=self.profile.name)
        yield FunctionCallFinished(call_id=call_id, status="error" if error else "ok", seconds=seconds, error=error)

    async def _run_call(self, turn: int, step: int, call_id: str, call: ToolCall) -> AsyncIterator[Event]:
        tool = self.functions.get(call.name)
        yield FunctionCallStarted(turn=turn, step=step, call_id=call_id, name=call.name, arguments=call.arguments,
                                  executor=tool.kind if tool else "none", target=tool.target if tool else "")
        charge: Charged | None = None
        if tool is not None:
            result = await self.runner.call(tool, call.arguments)
            content, error, seconds, detail = result.content, result.error, result.seconds, result.detail
            charge = self.ledger.charge_service(call_id=call_id, round=step, kind="function", service=tool.service,
                                                seconds=seconds, profile=self.profile.name)
        else:
            error, seconds, detail = self._unknown_call(call), 0.0, {}
            content = f"Error: {error}"
        yield FunctionCallFinished(call_id=call_id, status="ok" if error is None else "error", seconds=seconds,
                                   error=error, detail=detail)
        if charge is not None:
            yield charge
        yield self._add(turn, {"role": "tool", "tool_call_id": call_id, "content": content}, name=call.name)

    def _unknown_call(self, call: ToolCall) -> str:
        if not call.name:
            return f"the tool call is not a JSON object with a name: {call.arguments[:200]}"
        if call.name == EXPERT_TOOL:
            choices = ", ".join(self._offered.experts) or "none"
            return f"call_expert needs an expert this conversation offers ({choices}), and experts cannot call experts"
        names = ", ".join(t.name for t in self.functions.tools) or "none"
        return f"there is no tool named {call.name!r}; the tools are: {names}"

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
