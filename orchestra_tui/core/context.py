"""The evidence an episode gathers and the context blocks built from it, truncated as the reference does.

Truncation counts tokens of the policy's own tokenizer and keeps the tail (the best documents sit last).
The arithmetic mirrors the reference evaluation scripts, including their quirks: a limit of zero keeps
everything (Python's `ids[-0:]`), and a cut into the code part re-opens the fence with "```\n".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestra_tui.backends.base import Tokenizer
from orchestra_tui.core import prompts
from orchestra_tui.core.prompts import Variant


@dataclass
class CodeRecord:
    code: str
    output: str


@dataclass
class Evidence:
    """What the loop keeps between stateless rounds: documents and executed code with its stdout."""

    documents: list[str] = field(default_factory=list)
    code: list[CodeRecord] = field(default_factory=list)

    def add_search_results(self, ranked: list[str]) -> int:
        """Append results in reverse rank order without duplicates, so the best ends up last."""
        added = 0
        for text in reversed(ranked):
            if text not in self.documents:
                self.documents.append(text)
                added += 1
        return added

    def add_code(self, code: str, stdout: str) -> bool:
        """Only code whose stdout is not blank enters the context."""
        if not stdout.strip():
            return False
        self.code.append(CodeRecord(code, stdout))
        return True

    def copy(self) -> Evidence:
        return Evidence(list(self.documents), [CodeRecord(c.code, c.output) for c in self.code])


@dataclass(frozen=True)
class Cut:
    length: int  # tokens before the cut
    text: str


async def cut_tail(tokenizer: Tokenizer, text: str, limit: int) -> Cut:
    """Keep the last `limit` tokens of `text` (the reference's `cut_seq`)."""
    if not text:
        return Cut(0, "")
    ids = await tokenizer.encode(text)
    kept = ids[-limit:]
    if len(kept) == len(ids):
        return Cut(len(ids), text)
    return Cut(len(ids), "".join(await tokenizer.decode_each(kept)))


@dataclass(frozen=True)
class PolicyLimits:
    """Budgets of the orchestrator's context block; defaults are the reference's per variant."""

    doc_chars: int
    code_tokens: int = 12000
    context_tokens: int = 24000

    @staticmethod
    def for_variant(variant: Variant) -> PolicyLimits:
        if variant == "hle":
            return PolicyLimits(doc_chars=1200, code_tokens=12000, context_tokens=27000)
        return PolicyLimits(doc_chars=4000, code_tokens=12000, context_tokens=24000)


@dataclass(frozen=True)
class PolicyContext:
    text: str
    tokens: int  # size of the documents+code block before the final cut


def _code_block(evidence: Evidence) -> str:
    return "".join(prompts.code_entry(r.code, r.output) for r in evidence.code)


def _reopen_fence(text: str) -> str:
    if text and not text.startswith("```"):
        return prompts.CODE_CUT_PREFIX + text
    return text


async def policy_context(
    tokenizer: Tokenizer, problem: str, evidence: Evidence, variant: Variant, limits: PolicyLimits
) -> PolicyContext:
    if variant == "hle":
        docs = "".join(
            prompts.hle_document_entry(i, d, limits.doc_chars) for i, d in enumerate(evidence.documents, 1)
        )
    else:
        docs = "".join(prompts.document_entry(i, d[: limits.doc_chars]) for i, d in enumerate(evidence.documents, 1))
    code_cut = await cut_tail(tokenizer, _code_block(evidence), limits.code_tokens)
    code = _reopen_fence(code_cut.text)

    if variant == "hle":
        problem_tokens = len(await tokenizer.encode(problem))
        limit = limits.context_tokens - problem_tokens
        if code_cut.length >= limit:
            return PolicyContext(code, code_cut.length)
        block = docs + prompts.CODE_HEADER + code if code else docs
    else:
        limit = limits.context_tokens
        if code_cut.length >= limit:
            return PolicyContext(code, code_cut.length)
        block = docs + prompts.CODE_HEADER + code

    cut = await cut_tail(tokenizer, block, limit)
    text = prompts.DOCUMENTS_HEADER + cut.text if docs else cut.text
    return PolicyContext(text, cut.length)


@dataclass(frozen=True)
class ExpertLimits:
    """Per-expert budgets (docs characters / code tokens / context tokens); None = unlimited."""

    doc_chars: int | None = None
    code_tokens: int = 40000
    context_tokens: int = 120000


async def expert_context(tokenizer: Tokenizer, problem: str, evidence: Evidence, limits: ExpertLimits) -> str:
    docs = "".join(
        prompts.document_entry(i, d if limits.doc_chars is None else d[: limits.doc_chars])
        for i, d in enumerate(evidence.documents, 1)
    )
    code = _reopen_fence((await cut_tail(tokenizer, _code_block(evidence), limits.code_tokens)).text)
    problem_tokens = len(await tokenizer.encode(problem))
    cut = await cut_tail(tokenizer, docs + code, limits.context_tokens - problem_tokens)
    return prompts.DOCUMENTS_HEADER + cut.text if docs else cut.text
