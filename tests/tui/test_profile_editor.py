"""The profile editor, driven by Pilot: keyboard and mouse edits, saving, inline errors, save as, and
the active profile being switched to again after a save."""

from __future__ import annotations

import tomllib

from fixtures_tui import SHIPPED_PROFILES, ScriptedSource, plain, settle

from orchestra_tui.tui.app import OrchestraApp
from orchestra_tui.tui.screens.profile_editor import ProfileEditor
from orchestra_tui.tui.screens.profile_picker import ProfilePicker
from orchestra_tui.tui.widgets.header import SessionHeader
from orchestra_tui.tui.widgets.slider import Slider

SIZE = (120, 40)


def live(**kwargs) -> tuple[OrchestraApp, ScriptedSource]:
    source = ScriptedSource(profiles=SHIPPED_PROFILES, **kwargs)
    return OrchestraApp(source, cursor_blink=False), source


def error_line(app) -> str:
    error = app.screen.query_one("#editor-error")
    return plain(error) if error.display else ""


async def open_editor(pilot) -> ProfileEditor:
    await pilot.press("f5")
    await pilot.pause()
    assert isinstance(pilot.app.screen, ProfileEditor)
    return pilot.app.screen


async def test_arrow_keys_move_sliders_and_ctrl_s_saves_the_active_profile(tui_dirs):
    app, source = live()
    async with app.run_test(size=SIZE) as pilot:
        editor = await open_editor(pilot)
        assert editor.profile.name == "balanced" and editor.active
        assert app.focused.id == "alias-reasoner-1"
        await pilot.press("left", "left")  # 1.0 → 0.8
        await pilot.press("down")  # the next field: reasoner-2
        assert app.focused.id == "alias-reasoner-2"
        await pilot.press("left", "left", "left", "left", "left", "left", "left")  # 1.0 → 0.3
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, ProfileEditor)
        saved = tomllib.loads((tui_dirs["config"] / "profiles" / "balanced.toml").read_text())
        assert saved["aliases"] == {"reasoner-1": 0.8, "reasoner-2": 0.3}
        # Saving the active profile switches to it again: the engine re-reads it from the next round.
        assert source.switches == ["balanced"]


async def test_a_bad_value_is_shown_in_one_line_and_nothing_is_lost(tui_dirs):
    app, source = live()
    async with app.run_test(size=SIZE) as pilot:
        editor = await open_editor(pilot)
        await pilot.press("left")  # reasoner-1 → 0.9
        editor.query_one("#budget-usd_per_question").value = "[five] cents"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is editor
        message = error_line(app)
        assert "budget.usd_per_question" in message and "[five] cents" in message and "\n" not in message
        assert not (tui_dirs["config"] / "profiles" / "balanced.toml").exists()
        assert editor.query_one("#alias-reasoner-1", Slider).value == 0.9  # the edits are still there
        assert source.switches == []

        editor.query_one("#budget-usd_per_question").value = "0.05"
        await pilot.pause()
        assert error_line(app) == ""  # an edit clears the stale complaint
        await pilot.press("ctrl+s")
        await pilot.pause()
        saved = tomllib.loads((tui_dirs["config"] / "profiles" / "balanced.toml").read_text())
        assert saved["budget"] == {"usd_per_question": "0.05"} and saved["aliases"] == {"reasoner-1": 0.9}


async def test_save_as_writes_a_new_profile_and_refuses_an_existing_name(tui_dirs):
    app, source = live()
    async with app.run_test(size=SIZE) as pilot:
        editor = await open_editor(pilot)
        await pilot.press("end")  # already 1.0: no change
        editor.query_one("#pref-cost", Slider).value = 0.9
        name = editor.query_one("#save-as-name")
        name.value = "cheap"
        name.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert "'cheap' exists" in error_line(app)
        name.value = "thrifty"
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, ProfileEditor)
        saved = tomllib.loads((tui_dirs["config"] / "profiles" / "thrifty.toml").read_text())
        assert saved["name"] == "thrifty" and saved["weights"] == {"cost": 0.9}
        assert not (tui_dirs["config"] / "profiles" / "balanced.toml").exists()
        assert source.switches == []  # a copy is announced, not switched to


async def test_hard_rules_and_exclusions_are_switches(tui_dirs):
    app, _ = live()
    async with app.run_test(size=SIZE) as pilot:
        editor = await open_editor(pilot)
        editor.query_one("#exclude-answer-1").focus()
        await pilot.press("space")
        editor.query_one("#rule-local_only").focus()
        await pilot.press("space")
        await pilot.press("ctrl+s")
        await pilot.pause()
        saved = tomllib.loads((tui_dirs["config"] / "profiles" / "balanced.toml").read_text())
        assert saved["rules"] == {"exclude": ["answer-1"], "local_only": True}


async def test_a_click_sets_a_slider(tui_dirs):
    app, _ = live()
    async with app.run_test(size=SIZE) as pilot:
        editor = await open_editor(pilot)
        slider = editor.query_one("#alias-search-2", Slider)
        slider.scroll_visible(animate=False)
        await pilot.pause()
        await pilot.click(slider, offset=(0, 0))
        assert slider.value == 0.0 and app.focused is slider
        await pilot.click(slider, offset=((slider.track_width - 1) // 2, 0))
        assert slider.value == 0.5
        await pilot.press("right")
        assert slider.value == 0.6


async def test_cancel_leaves_everything_as_it_was(tui_dirs):
    app, source = live()
    async with app.run_test(size=SIZE) as pilot:
        await open_editor(pilot)
        await pilot.press("left", "escape")
        await pilot.pause()
        assert not isinstance(app.screen, ProfileEditor)
        assert not (tui_dirs["config"] / "profiles").exists() and source.switches == []


async def test_the_picker_and_the_palette_open_the_editor_on_a_chosen_profile(tui_dirs):
    app, _ = live()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f2")
        await pilot.pause()
        assert isinstance(app.screen, ProfilePicker)
        await pilot.press("down", "e")  # balanced → avoid-gpt5, edit it
        await pilot.pause()
        assert isinstance(app.screen, ProfileEditor)
        assert app.screen.profile.name == "avoid-gpt5" and not app.screen.active
        await pilot.press("escape")
        await pilot.pause()

        await pilot.press("ctrl+p")
        await pilot.press(*"edit profile: cheap")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ProfileEditor) and app.screen.profile.name == "cheap"


async def test_saving_the_active_profile_mid_episode_applies_from_the_next_round(tui_dirs):
    app, source = live(hold_at_round=2)
    async with app.run_test(size=SIZE) as pilot:
        app.query_one("#ask").value = "q"
        await pilot.press("enter")
        await source.holding.wait()
        await open_editor(pilot)
        await pilot.press("left", "ctrl+s")
        await pilot.pause()
        assert source.switches == ["balanced"]
        assert "balanced (edited; reloads next round)" in plain(app.query_one(SessionHeader))
        source.resume.set()
        await settle(app, pilot)
        assert "profile balanced reloaded from round 2" in app.query_one("#transcript").text()
        assert "next round" not in plain(app.query_one(SessionHeader))


async def test_every_field_is_reachable_by_keyboard_at_80x24(tui_dirs):
    app, _ = live()
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_editor(pilot)
        body = editor.query_one("#editor-body")
        fields = [w for w in editor.query("Slider, Checkbox, Input, Button") if w.focusable]
        seen = set()
        for _ in range(len(fields) + 1):
            focused = app.focused
            seen.add(focused)
            if focused in body.query("*"):
                # Focus scrolls the form: the focused field is on screen, inside the form's viewport.
                assert body.scrollable_content_region.contains_region(focused.region), focused
            await pilot.press("tab")
            await pilot.pause()
        assert set(fields) <= seen
