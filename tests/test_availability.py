"""Availability: missing keys and silent endpoints make aliases unavailable; a pool needs one live endpoint."""

from __future__ import annotations

import socket

import pytest

from loopback_http import serve_get

from orchestra_tui.core.availability import endpoint_problem, key_problem


@pytest.fixture
def live_url():
    with serve_get(lambda request: (200, b'{"data": []}')) as port:
        yield f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def dead_url():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_missing_key_names_the_variable():
    assert key_problem({"api_key_env": "SOME_KEY"}, {}) == "SOME_KEY is not set"
    assert key_problem({"api_key_env": "SOME_KEY"}, {"SOME_KEY": "x"}) is None


async def test_single_endpoints(live_url, dead_url):
    assert await endpoint_problem({"base_url": live_url}, {}) is None
    problem = await endpoint_problem({"base_url": dead_url}, {}, timeout_s=2)
    assert problem and "does not answer" in problem


async def test_a_pool_is_available_while_one_endpoint_answers(live_url, dead_url):
    assert await endpoint_problem({"base_url": [dead_url, live_url]}, {}, timeout_s=2) is None
    problem = await endpoint_problem({"base_url": [dead_url]}, {}, timeout_s=2)
    assert problem and "does not answer" in problem
