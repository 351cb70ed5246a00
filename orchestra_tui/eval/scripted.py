"""A scripted world for eval tests and the throughput benchmark: no model, a fixed latency per call.

Every backend of the catalog becomes one scripted stand-in that plays every role from the prompt it gets:
the policy searches while `search` is offered and no document is in its context, then answers; the query
writer writes a query; the answerer answers with the text inside the first `[[...]]` of the problem (so a
test controls which answers are right); the judge says True when the student's answer occurs in the
reference. Reached from the CLI only through a hidden flag; never a way to measure answer quality.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

from orchestra_tui.backends.base import ChatResult, Sampling, TextDelta
from orchestra_tui.backends.scripted import ScriptedBackend
from orchestra_tui.core.catalog import Catalog
from orchestra_tui.eval.parts import EngineParts

_CHOICES = re.compile(r"Choices: \[([^\]]*)\]")
_MARKED = re.compile(r"\[\[(.+?)\]\]")
DOCS = ["The scripted world has one fact: the answer is marked in the question.",
        "Scripted documents carry no information."]


def _first_choice(tool: dict[str, Any]) -> str:
    text = tool["function"]["parameters"]["properties"]["model"]["description"]
    found = _CHOICES.search(text)
    return found.group(1).split(",")[0].strip().strip("'\"") if found else ""


def _call(name: str, alias: str) -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {{"model": "{alias}"}}}}\n</tool_call>'


def reply(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    text = str(messages[-1].get("content", ""))
    if tools is not None:
        offered = {t["function"]["name"]: t for t in tools}
        if "search" in offered and "Documents:" not in text:
            return _call("search", _first_choice(offered["search"]))
        if "answer" in offered:
            return _call("answer", _first_choice(offered["answer"]))
        return "no tool fits"
    if "Student answer:" in text:
        student = text.split("Student answer:")[-1].split("\n\n")[0].strip().lower()
        reference = text.split("Reference answer:")[-1].split("\n\n")[0].strip().lower()
        return f"<correct>{bool(student) and student in reference}</correct>"
    if "<query>" in text:
        return "<query>the marked answer of the scripted world</query>"
    marked = _MARKED.search(text)
    answer = marked.group(1) if marked else "unknown"
    return f"<answer>{answer}</answer> \\boxed{{{answer}}}"


class DelayedScripted(ScriptedBackend):
    """A scripted backend that takes `delay` seconds per call, like a remote expert would."""

    def __init__(self, delay: float, model: str) -> None:
        super().__init__([reply], model=model)
        self.delay = delay

    async def stream(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                     sampling: Sampling, constrain_tool_call: bool = False) -> AsyncIterator[TextDelta | ChatResult]:
        self.calls.clear()  # one world serves many episodes: keep no history
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        async for item in super().stream(messages, tools=tools, sampling=sampling):
            yield item


class ListRetriever:
    name = "scripted"
    price_key = "retrieval_local"

    async def retrieve(self, query: str, topk: int) -> list[dict[str, Any]]:
        return [{"id": f"s{i}", "content": d, "score": 1.0 - i / 10} for i, d in enumerate(DOCS[:topk])]


class SilentRunner:
    """Never reached by the scripted policy; present because every session needs a code runner."""

    name = "scripted"

    async def run(self, code: str, *, timeout_s: float = 60) -> Any:
        from orchestra_tui.services.code_runner import CodeResult

        return CodeResult("", "", 0, False, 0.0, self.name, False)


class ScriptedParts(EngineParts):
    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay

    async def problems(self, catalog: Catalog) -> dict[str, str]:
        return {}  # nothing to probe: every backend is a stand-in

    def _make_backend(self, spec: dict[str, Any]) -> Any:
        return DelayedScripted(self.delay, str(spec.get("model") or spec.get("kind")))

    def _make_retriever(self, spec: dict[str, Any]) -> Any:
        return ListRetriever()

    def _make_code_runner(self) -> Any:
        return SilentRunner()
