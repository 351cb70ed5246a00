"""Judging an answer against the reference answer, as the reference evaluation does (ORCHESTRATOR.md §6).

Rules in order: an empty answer or one of more than 500 words is wrong; a case-insensitive exact match is
right; anything else goes to an LLM judge that answers `<correct>True|False</correct>`. Without a judge
those are recorded as `unjudged` (correct = None), never guessed.

The verdict is appended to the question's trajectory as a `judged` line after `episode_ended`, so the
trajectory alone holds everything the summary reports; readers that do not know the type skip it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from orchestra_tui.backends.base import BackendError, ChatBackend, complete
from orchestra_tui.core import prompts
from orchestra_tui.core.catalog import ExpertSpec
from orchestra_tui.core.episode_record import Judged
from orchestra_tui.core.ledger import PriceBook

MAX_WORDS = 500


def rule_verdict(prediction: str, reference: str) -> tuple[bool, str] | None:
    """The verdict the rules alone give, or None when a judge is needed."""
    pred = prediction.strip()
    # The reference counts words by splitting on single spaces; kept so "too long" means the same thing.
    if not pred:
        return False, "empty"
    if len(pred.split(" ")) > MAX_WORDS:
        return False, "too_long"
    if pred.lower() == reference.strip().lower():
        return True, "exact"
    return None


def parse_judge_reply(content: str) -> bool:
    """The reference's parse: the text after the last <correct> up to </correct>, 'true' means right."""
    return content.split("<correct>")[-1].split("</correct>")[0].strip().lower() == "true"


@dataclass
class LlmJudge:
    """An alias of the catalog used as the judge (the reference uses gpt-5 at temperature 1)."""

    alias: str
    spec: ExpertSpec
    backend: ChatBackend
    prices: PriceBook

    async def ask(self, question: str, prediction: str, reference: str) -> dict[str, Any]:
        messages = [{"role": "user", "content": prompts.judge_prompt(question, prediction, reference)}]
        started = time.monotonic()
        result = await complete(self.backend, messages, sampling=self.spec.sampling)
        price = self.prices.model(self.spec.model)
        usage = result.usage
        cost = None if price is None else str(price.cost(usage.prompt_tokens, usage.completion_tokens))
        return {
            "judge": self.alias, "judge_model": self.spec.model, "judge_reply": result.content,
            "input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens,
            "cost_usd": cost, "seconds": time.monotonic() - started,
            "correct": parse_judge_reply(result.content),
        }


async def judge_answer(question_id: str, question: str, prediction: str | None, reference: Any,
                       judge: LlmJudge | None) -> Judged:
    pred, ref = (prediction or "").strip(), str(reference)
    base = {"question_id": question_id, "reference": ref, "prediction": pred}
    ruled = rule_verdict(pred, ref)
    if ruled is not None:
        return Judged(**base, correct=ruled[0], method=ruled[1], cost_usd="0")
    if judge is None:
        return Judged(**base, correct=None, method="unjudged", cost_usd="0")
    try:
        verdict = await judge.ask(question, pred, ref)
    except BackendError as exc:
        # A failed judge call leaves the question unjudged; a later run with --judge retries it.
        return Judged(**base, correct=None, method="judge_failed", judge=judge.alias,
                      judge_model=judge.spec.model, judge_reply=str(exc), cost_usd=None)
    return Judged(**base, method="judge", **verdict)


def needs_judging(verdict: Judged | None, judge: LlmJudge | None) -> bool:
    """Judge again when there is no verdict yet, or a judge is now given for one left open."""
    if verdict is None:
        return True
    return verdict.correct is None and judge is not None
