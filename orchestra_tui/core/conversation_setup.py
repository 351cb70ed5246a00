"""What the policy sees in the conversational mode: its system prompt, its tools, its sampling, and how a
reply and a long history are read. The loop itself is conversation.py; the prompt text is prompts.py.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestra_tui.backends.base import Sampling
from orchestra_tui.backends.hermes import CALL_CLOSE, CALL_OPEN, split_thinking
from orchestra_tui.core import prompts
from orchestra_tui.core.budget import Budget, CallCounts
from orchestra_tui.core.catalog import Catalog
from orchestra_tui.core.function_tools import FunctionToolSet
from orchestra_tui.core.ledger import PriceBook
from orchestra_tui.core.profile_model import Profile
from orchestra_tui.core.steering import Steering
from orchestra_tui.core.tool_descriptions import alias_prices, parse_model_description

_CALL_BLOCK = re.compile(re.escape(CALL_OPEN) + r".*?(?:" + re.escape(CALL_CLOSE) + r"|$)", re.DOTALL)


@dataclass(frozen=True)
class Offer:
    experts: dict[str, str]  # offered expert-N → catalog alias
    withheld: dict[str, str]  # expert-N → why it is not offered
    tools: list[dict[str, Any]]  # the policy's tools: the declared ones, then call_expert when offered
    expert_tools: list[dict[str, Any]]  # an expert's tools: the declared ones only
    system: str  # the policy's system message
    expert_system: str  # the expert's, before prompts.conversation_expert_messages adapts it


def make_offer(functions: FunctionToolSet, catalog: Catalog, profile: Profile, prices: PriceBook,
               unavailable: Mapping[str, str], call_expert: bool) -> Offer:
    """Which experts call_expert offers (mapped through the catalog, minus what the profile withholds or
    cannot be reached), and the tool list and system prompt that follow from that."""
    steering = Steering(profile, Budget(None), CallCounts(lambda alias: None), unavailable=dict(unavailable))
    reasons = steering.withheld(catalog)
    experts: dict[str, str] = {}
    withheld: dict[str, str] = {}
    for expert, alias in functions.expert_aliases.items():
        if not call_expert:
            withheld[expert] = "call_expert is disabled"
        elif alias not in catalog.experts:
            withheld[expert] = f"{alias} is not in catalog {catalog.name}"
        elif alias in reasons:
            withheld[expert] = f"{alias}: {reasons[alias]}"
        else:
            experts[expert] = alias
    declared = [tool.schema() for tool in functions.tools]
    tools = list(declared)
    if experts:
        # Narrowed and re-priced like the orchestra tools: what remains reads as the reference wrote it.
        models = {expert: catalog.experts[alias].model for expert, alias in experts.items()}
        described = parse_model_description(prompts.CALL_EXPERT_ARGUMENT)
        tools.append(prompts.call_expert_tool(described.render(experts, alias_prices(models, prices.model))))
    return Offer(
        experts=experts,
        withheld=withheld,
        tools=tools,
        expert_tools=declared,
        system=prompts.conversation_policy_system(prompts.conversation_system(functions.policy,
                                                                              with_expert=bool(experts))),
        # The reference hands the expert the domain policy as it was before call_expert was added.
        expert_system=prompts.conversation_system(functions.policy, with_expert=False),
    )


def policy_sampling(catalog: Catalog, profile: Profile) -> Sampling:
    """The reference τ² orchestrator sampling (temperature 1, 8000 tokens), with what the catalog's
    [policy] table sets itself and the profile's overrides on top. The loaded catalog fills unset keys
    with the orchestra mode's defaults, so the file says which keys were really set."""
    try:
        table = tomllib.loads(Path(catalog.path).read_text(encoding="utf-8")).get("policy") or {}
    except (OSError, ValueError):
        table = {}
    keys = set(table) & {f.name for f in dataclasses.fields(Sampling)}
    explicit = {key: getattr(catalog.policy.sampling, key) for key in keys}
    return profile.apply_sampling(Sampling(**{"temperature": 1.0, "max_tokens": 8000, **explicit}))


def visible_text(content: str) -> str:
    """What a reply says to the user: the thinking and any call blocks removed, and the `<message>` span
    when there is one (the reference's rule; an unclosed span runs to the end)."""
    _, rest = split_thinking(content)
    rest = _CALL_BLOCK.sub("", rest)
    if "<message>" in rest:
        rest = rest.split("<message>")[-1].split("</message>")[0]
    return rest.strip()


def middle_cut(counts: list[int], budget: int) -> tuple[int, int]:
    """(head, tail): how many messages to keep from the start and from the end so that each half of the
    budget holds whole messages, as the reference's middle cut does. The newest message is always kept.
    Everything fits: (len, 0)."""
    if sum(counts) <= budget:
        return len(counts), 0
    half = budget // 2
    head = used = 0
    while head < len(counts) and used + counts[head] <= half:
        used, head = used + counts[head], head + 1
    tail = used = 0
    while tail < len(counts) - head and used + counts[-1 - tail] <= half:
        used, tail = used + counts[-1 - tail], tail + 1
    return head, max(tail, 1)
