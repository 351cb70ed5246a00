"""Catalogs load, and bad ones fail with one line naming the file and key."""

from __future__ import annotations

import pytest

from orchestra_tui.core.catalog import CatalogError, load_catalog, with_policy_backend
from orchestra_tui.core.toolset import REFERENCE_ALIASES


def test_embedded_catalog_maps_every_alias_to_the_local_model():
    catalog = load_catalog("embedded")
    assert catalog.policy.backend == "local" and catalog.policy.constrain_tool_call
    assert catalog.aliases() == {t: tuple(a) for t, a in REFERENCE_ALIASES.items()}
    assert {e.model for e in catalog.experts.values()} == {"SmolLM2-135M-Instruct"}
    assert catalog.experts["answer-1"].answer_style == "gpt"
    assert catalog.policy.limits("frames").context_tokens == 3000


def test_policy_override_renames_the_model_everywhere():
    catalog = with_policy_backend(load_catalog("embedded"), {"kind": "llamacpp", "model_path": "/m/Orch-Q8_0.gguf"})
    assert catalog.policy.model == "Orch-Q8_0"
    assert {e.model for e in catalog.experts.values()} == {"Orch-Q8_0"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[backends.a]\nkind='embedded'\n[policy]\nbackend='a'\ntemprature=1", "policy: unknown key 'temprature' (did you mean 'temperature'?)"),
        ("[backends.a]\nkind='embeded'\n[policy]\nbackend='a'", "backends.a.kind: 'embeded' is not one of"),
        ("[backends.a]\nkind='embedded'\n[policy]\nbackend='b'", "policy.backend: no backend named 'b'"),
        ("[backends.a]\nkind='embedded'\n[policy]\nbackend='a'\n[experts.answer-7]\nbackend='a'", "experts.answer-7: unknown alias (did you mean 'answer-"),
        ("[backends.a]\nkind='embedded'\n[policy]\nbackend='a'\nmax_tokens=-3", "policy.max_tokens: expected a whole number"),
        ("[backends.a\nkind='embedded'", "bad.toml: "),
    ],
)
def test_bad_catalogs_give_one_line(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith("bad.toml")


def test_unknown_shipped_catalog_suggests(tmp_path):
    with pytest.raises(CatalogError, match="did you mean 'embedded'"):
        load_catalog("embeded")
