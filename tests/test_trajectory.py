"""Trajectory writer and reader: round trip, torn tails, versions, and one-line errors."""

from __future__ import annotations

import json

import pytest

from orchestra_tui.core import events as ev
from orchestra_tui.core.trajectory import TrajectoryError, TrajectoryWriter, load_trajectory, read_trajectory


def write_sample(path):
    writer = TrajectoryWriter(path, {"catalog": "x"})
    writer.write(ev.Notice(level="info", message="hello"))
    writer.write(ev.PolicyDelta(round=1, text="streamed"))  # transient: not persisted
    writer.write(ev.EpisodeEnded(status="answered", answer="4", rounds=1, cost_usd="0.01", latency_s=1.5))
    writer.close()


def test_round_trip(tmp_path):
    path = tmp_path / "t.jsonl"
    write_sample(path)
    header, events = read_trajectory(path)
    assert header["catalog"] == "x" and header["version"] == "1.0"
    assert [type(e) for e in events] == [ev.Notice, ev.EpisodeEnded]
    assert events[1].answer == "4" and events[1].cost_usd == "0.01"


def test_torn_last_line_is_tolerated(tmp_path):
    path = tmp_path / "t.jsonl"
    write_sample(path)
    with open(path, "a") as f:
        f.write('{"type": "notice", "level": "in')
    t = load_trajectory(path)
    assert t.torn_tail and len(t.events) == 2


def test_broken_middle_line_names_its_number(tmp_path):
    path = tmp_path / "t.jsonl"
    write_sample(path)
    lines = path.read_text().splitlines()
    lines.insert(1, "garbage")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TrajectoryError, match=r"t\.jsonl: line 2 is not JSON"):
        load_trajectory(path)


def test_newer_major_version_is_refused(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"type": "header", "schema": "orchestra-tui.trajectory", "version": "2.0"}) + "\n")
    with pytest.raises(TrajectoryError, match="format 2.0 is newer"):
        load_trajectory(path)


def test_newer_minor_version_unknown_events_are_skipped(tmp_path):
    path = tmp_path / "t.jsonl"
    lines = [
        {"type": "header", "schema": "orchestra-tui.trajectory", "version": "1.7"},
        {"type": "hologram", "x": 1},
        {"type": "notice", "level": "info", "message": "m", "future_field": True, "ts": 1.0},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    _, events = read_trajectory(path)
    assert events == [ev.Notice(level="info", message="m", ts=1.0)]


def test_not_a_trajectory(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"hello": 1}\n')
    with pytest.raises(TrajectoryError, match="not an orchestra-tui trajectory header"):
        load_trajectory(path)
    with pytest.raises(TrajectoryError, match="missing.jsonl: No such file"):
        load_trajectory(tmp_path / "missing.jsonl")


def test_every_event_type_round_trips():
    sample = ev.Charged(call_id="c", round=1, kind="expert", alias="a", model="m", input_tokens=1,
                        output_tokens=2, seconds=0.5, cost_usd=None, price_source="unpriced", profile="p")
    assert ev.event_from_dict(json.loads(json.dumps(sample.to_dict()))) == sample
