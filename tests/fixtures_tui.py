"""A scripted engine for the TUI tests: a fixed three-round episode with fixed tokens, prices and times.

search (expert writes a query, the local index answers, unpriced) → enhance_reasoning (an expert writes code,
it runs) → answer. No timing sleeps: the source yields to the loop between events, and a test can hold it
at the start of a round to act mid-episode (cancel, switch profile) and then let it go on.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from orchestra_tui.core.events import (
    Charged,
    CodeExecuted,
    DocumentsRetrieved,
    EpisodeEnded,
    EpisodeStarted,
    Event,
    ExpertDelta,
    ExpertOutput,
    FinalAnswer,
    PolicyDelta,
    PolicyOutput,
    ProfileSwitched,
    RoundStarted,
    SearchQuery,
    ToolCallFinished,
    ToolCallStarted,
)

QUESTION = "What is 17 * 23 plus the year the Eiffel Tower opened?"
ANSWER = "2280"
POLICY = {"backend": "llama.cpp", "model": "Orchestrator-8B-Q8_0"}
POLICY_MODEL = "nvidia/Orchestrator-8B"
PROFILES = ("balanced", "fast", "frugal")
SHIPPED_PROFILES = ("balanced", "avoid-gpt5", "cheap")  # names with real files, for the profile editor
T0 = 1_700_000_000.0  # fixed timestamps: nothing on screen may depend on the wall clock


def _tools() -> list[dict]:
    return [{"type": "function", "function": {"name": name}} for name in ("search", "enhance_reasoning", "answer")]


def _call(name: str, alias: str) -> list[dict]:
    return [{"name": name, "arguments": f'{{"model": "{alias}"}}'}]


def _policy_round(n: int, context: int, thinking: str, call: list[dict], tokens: tuple[int, int], cost: str,
                  seconds: float) -> list[Event]:
    words = thinking.split(" ")
    deltas = [PolicyDelta(round=n, text="<think>\n")]
    deltas += [PolicyDelta(round=n, text=w + " ") for w in words]
    deltas.append(PolicyDelta(round=n, text="</think>"))
    return [
        RoundStarted(round=n, messages=[{"role": "user", "content": "Problem: …"}], tools=_tools(),
                     context_tokens=context),
        *deltas,
        PolicyOutput(round=n, content=f"<think>\n{thinking}\n</think>", reasoning=thinking, tool_calls=call,
                     usage={"prompt_tokens": tokens[0], "completion_tokens": tokens[1]}, seconds=seconds),
        Charged(call_id=f"r{n}-policy", round=n, kind="policy", alias=None, model=POLICY_MODEL,
                input_tokens=tokens[0], output_tokens=tokens[1], seconds=seconds, cost_usd=cost,
                price_source="prices.toml", profile=""),
    ]


def episode_script(question: str = QUESTION, episode: int = 1, profile: str = "balanced") -> list[Event]:
    """The events of one answered episode, in engine order, with fixed timestamps."""
    p = f"e{episode}-" if episode > 1 else ""
    events: list[Event] = [
        EpisodeStarted(episode_id=f"ep-{episode}", question=question, problem=question, variant="frames",
                       max_rounds=50, profile=profile, policy=POLICY),
        *_policy_round(1, 312, "I need the year the Eiffel Tower opened; a search will find it.",
                       _call("search", "search-2"), (312, 64), "0.0000752", 2.1),
        ToolCallStarted(round=1, call_id=f"{p}c1", tool="search", alias="search-2", model="gpt-5-mini",
                        arguments={"model": "search-2"}),
        ExpertDelta(call_id=f"{p}c1", text="<query>Eiffel Tower "),
        ExpertDelta(call_id=f"{p}c1", text="opening year</query>"),
        ExpertOutput(call_id=f"{p}c1", messages=[], content="<query>Eiffel Tower opening year</query>",
                     usage={}, seconds=0.9),
        Charged(call_id=f"{p}c1", round=1, kind="expert", alias="search-2", model="gpt-5-mini", input_tokens=420,
                output_tokens=18, seconds=0.9, cost_usd="0.000141", price_source="prices.toml", profile=""),
        SearchQuery(call_id=f"{p}c1", query="Eiffel Tower opening year", source="expert"),
        DocumentsRetrieved(call_id=f"{p}c1", retriever="local-index", added=2, seconds=0.3, results=[
            {"id": "eiffel-1", "score": 0.91, "content": "The Eiffel Tower opened on 31 March 1889."},
            {"id": "paris-7", "score": 0.74, "content": "Paris hosted the 1889 Exposition Universelle."},
        ]),
        Charged(call_id=f"{p}c1", round=1, kind="retrieval", alias=None, model="local-index", input_tokens=0,
                output_tokens=0, seconds=0.3, cost_usd=None, price_source="none", profile=""),
        ToolCallFinished(call_id=f"{p}c1", status="ok", summary="2 documents (2 new)", seconds=1.4),
        *_policy_round(2, 540, "The tower opened in 1889. Now compute 17 * 23 + 1889 with code.",
                       _call("enhance_reasoning", "reasoner-3"), (540, 80), "0.000124", 2.4),
        ToolCallStarted(round=2, call_id=f"{p}c2", tool="enhance_reasoning", alias="reasoner-3",
                        model="Qwen/Qwen2.5-Coder-32B-Instruct", arguments={"model": "reasoner-3"}),
        ExpertOutput(call_id=f"{p}c2", messages=[], content="```python\nprint(17 * 23 + 1889)\n```",
                     usage={}, seconds=1.2),
        Charged(call_id=f"{p}c2", round=2, kind="expert", alias="reasoner-3", model="Qwen/Qwen2.5-Coder-32B-Instruct",
                input_tokens=610, output_tokens=40, seconds=1.2, cost_usd="0.00052", price_source="prices.toml",
                profile=""),
        CodeExecuted(call_id=f"{p}c2", code="print(17 * 23 + 1889)", stdout="2280\n", stderr="", exit_code=0,
                     timed_out=False, seconds=0.05, runner="subprocess"),
        Charged(call_id=f"{p}c2", round=2, kind="code", alias=None, model="code", input_tokens=0, output_tokens=0,
                seconds=0.05, cost_usd="0.000000415", price_source="prices.toml", profile=""),
        ToolCallFinished(call_id=f"{p}c2", status="ok", summary="stdout: 2280", seconds=1.3),
        *_policy_round(3, 620, "The code printed 2280. Ask a strong expert to state the answer.",
                       _call("answer", "answer-1"), (620, 30), "0.00013", 1.9),
        ToolCallStarted(round=3, call_id=f"{p}c3", tool="answer", alias="answer-1", model="gpt-5",
                        arguments={"model": "answer-1"}),
        ExpertDelta(call_id=f"{p}c3", text="17 × 23 = 391, and the tower opened in 1889, "),
        ExpertDelta(call_id=f"{p}c3", text="so the sum is <answer>2280</answer>"),
        ExpertOutput(call_id=f"{p}c3", messages=[], usage={}, seconds=2.0,
                     content="17 × 23 = 391, and the tower opened in 1889, so the sum is <answer>2280</answer>"),
        Charged(call_id=f"{p}c3", round=3, kind="expert", alias="answer-1", model="gpt-5", input_tokens=700,
                output_tokens=50, seconds=2.0, cost_usd="0.001375", price_source="prices.toml", profile=""),
        FinalAnswer(call_id=f"{p}c3", alias="answer-1", model="gpt-5", answer=ANSWER, extracted_by="answer_tag"),
        ToolCallFinished(call_id=f"{p}c3", status="ok", summary="answered", seconds=2.0),
        EpisodeEnded(status="answered", answer=ANSWER, rounds=3, cost_usd=None, latency_s=12.4),
    ]
    events = [dataclasses.replace(e, profile=profile) if isinstance(e, Charged) else e for e in events]
    return [dataclasses.replace(e, ts=T0 + 1000 * episode + 0.25 * i) for i, e in enumerate(events)]


def recorded_events(profile: str = "balanced") -> list[Event]:
    """What a trajectory holds for one episode: the transient deltas are not persisted."""
    return [e for e in episode_script(profile=profile) if not e.transient]


class ScriptedSource:
    """An EpisodeSource that plays `episode_script`, honouring cancel and profile switches like the engine:
    both take effect at the next event boundary, a switch at the next round."""

    policy_label = "llama.cpp · Orchestrator-8B-Q8_0"

    def __init__(self, hold_at_round: int | None = None, unavailable: list[tuple[str, str]] | None = None,
                 profiles: tuple[str, ...] = PROFILES) -> None:
        self.profiles = profiles
        self._profile = profiles[0]
        self._pending_profile: str | None = None
        self._cancelled = False
        self._unavailable = list(unavailable or [])
        self.hold_at_round = hold_at_round
        self.holding = asyncio.Event()  # set when the script stops before `hold_at_round`
        self.resume = asyncio.Event()  # set by the test to let it go on
        self.asked: list[str] = []
        self.switches: list[str] = []

    @property
    def profile_name(self) -> str:
        # As `Session.profile_name`: a switch asked for shows at once, though it applies at the next round.
        return self._pending_profile or self._profile

    def profile_names(self) -> list[str]:
        return list(self.profiles)

    def unavailable(self) -> list[tuple[str, str]]:
        return list(self._unavailable)

    def switch_profile(self, name: str) -> None:
        if name not in self.profiles:
            raise ValueError(f"unknown profile {name!r}")
        self.switches.append(name)
        self._pending_profile = name

    def cancel(self) -> None:
        self._cancelled = True

    async def ask(self, question: str) -> AsyncIterator[Event]:
        self._cancelled = False
        self.asked.append(question)
        rounds = 0
        for event in episode_script(question, episode=len(self.asked), profile=self._profile):
            await asyncio.sleep(0)
            if isinstance(event, RoundStarted) and event.round == self.hold_at_round and not self.resume.is_set():
                self.holding.set()
                await self.resume.wait()
            if self._cancelled:
                yield EpisodeEnded(status="cancelled", answer=None, rounds=rounds, cost_usd=None, latency_s=3.0,
                                   ts=event.ts)
                return
            if isinstance(event, RoundStarted):
                rounds = event.round
                if self._pending_profile is not None:
                    old, self._profile, self._pending_profile = self._profile, self._pending_profile, None
                    yield ProfileSwitched(round=event.round, old=old, new=self._profile, withheld={},
                                          preference=None, ts=event.ts)
            if isinstance(event, Charged):
                event = dataclasses.replace(event, profile=self._profile)
            yield event


@pytest.fixture
def scripted_source() -> ScriptedSource:
    return ScriptedSource()


def plain(widget) -> str:
    """The text a Static shows, without styles."""
    content = getattr(widget, "content", widget)
    return getattr(content, "plain", None) or str(content)


async def settle(app, pilot) -> None:
    """Let the episode worker finish and the app paint what it produced (no sleeps)."""
    await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


@pytest.fixture
def tui_dirs(tmp_path, monkeypatch):
    """Config and state folders of this test alone: the editor writes profiles, the engine trajectories."""
    dirs = {"config": tmp_path / "config", "state": tmp_path / "state"}
    monkeypatch.setenv("ORCHESTRA_TUI_CONFIG_DIR", str(dirs["config"]))
    monkeypatch.setenv("ORCHESTRA_TUI_STATE_DIR", str(dirs["state"]))
    return dirs


def write_trajectory(path, events: list[Event], header: dict | None = None):
    """A trajectory file as the engine writes it (its own writer), for the app to open."""
    from orchestra_tui.core.trajectory import TrajectoryWriter

    writer = TrajectoryWriter(path, {"profile": "balanced", **(header or {})})
    for event in events:
        writer.write(event)
    writer.close()
    return path
