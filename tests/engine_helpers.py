"""Shared pieces for engine tests: a scripted session with an in-memory retriever."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestra_tui.backends.scripted import ScriptedBackend
from orchestra_tui.core.catalog import load_catalog
from orchestra_tui.core.session import Session, SessionOptions

DATA = Path(__file__).parent / "data"


class ListRetriever:
    name = "list"
    price_key = "retrieval_local"

    def __init__(self, docs: list[str]) -> None:
        self.docs = docs
        self.queries: list[str] = []

    async def retrieve(self, query: str, topk: int) -> list[dict[str, Any]]:
        self.queries.append(query)
        return [{"id": f"d{i}", "content": d, "score": 1.0 - i / 10} for i, d in enumerate(self.docs[:topk])]


def scripted_session(
    tmp_path: Path,
    policy: ScriptedBackend,
    expert: ScriptedBackend,
    *,
    docs: list[str] | None = None,
    code_runner: Any = None,
    **options: Any,
) -> Session:
    from orchestra_tui.services.code_runner import SubprocessRunner

    catalog = load_catalog(DATA / "scripted_catalog.toml")
    opts = SessionOptions(catalog=catalog.path, trajectory=tmp_path / "t.jsonl", **options)
    return Session(
        opts,
        catalog=catalog,
        backends={"policy": policy, "expert": expert, "unpriced": expert},
        retriever=ListRetriever(docs if docs is not None else ["Paris is the capital of France.", "Lyon is in France."]),
        code_runner=code_runner or SubprocessRunner(),
    )


async def collect(session: Session, question: str) -> list[Any]:
    return [event async for event in session.ask(question)]
