"""Python entry points declared by the test function-tool files (tests/data/functions_*.toml)."""

from __future__ import annotations

import asyncio
from typing import Any

CALLS: list[tuple[str, dict[str, Any]]] = []  # every call, in order, for assertions

ORDERS = {"A1": "shipped", "B2": "processing"}


def order_status(order_id: str) -> dict[str, str]:
    CALLS.append(("order_status", {"order_id": order_id}))
    return {"order_id": order_id, "status": ORDERS.get(order_id, "unknown")}


async def add(a: int, b: int) -> int:
    CALLS.append(("add", {"a": a, "b": b}))
    await asyncio.sleep(0)  # a real coroutine: it must be awaited, not run in a thread
    return a + b


def explode(**arguments: Any) -> str:
    CALLS.append(("explode", arguments))
    raise RuntimeError("the warehouse is on fire")


def lookup(city: str) -> str:
    """For the real-model test: any city string is fine, the result names it."""
    CALLS.append(("lookup", {"city": city}))
    return f"Weather in {city}: sunny, 21 C"
