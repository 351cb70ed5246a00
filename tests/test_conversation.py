"""The conversational function-tool mode: declarations, executors, the loop, and the real tiny model."""

from __future__ import annotations

import io
import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import conversation_tools
import pytest
from engine_helpers import DATA

from orchestra_tui.backends.base import BackendError
from orchestra_tui.backends.scripted import ScriptedBackend
from orchestra_tui.core import events as ev
from orchestra_tui.core import prompts
from orchestra_tui.core.catalog import load_catalog
from orchestra_tui.core.conversation import Conversation, ConversationOptions, visible_text
from orchestra_tui.core.function_runner import CommandRunner, FunctionRunner
from orchestra_tui.core.function_tools import FunctionToolError, load_function_tools
from orchestra_tui.core.tool_descriptions import parse_model_description
from orchestra_tui.core.trajectory import load_trajectory
from orchestra_tui.services.sandbox import SandboxProbe, probe_sandbox

ORDERS = DATA / "functions_orders.toml"
needs_bwrap = pytest.mark.skipif(probe_sandbox().kind != "bubblewrap", reason="bubblewrap sandbox not available")


def call(name: str, arguments: dict | str, thinking: str = "") -> str:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    think = f"<think>{thinking}</think>\n" if thinking else ""
    return f'{think}<tool_call>\n{{"name": "{name}", "arguments": {args}}}\n</tool_call>'


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def conversation(tmp_path, policy, expert=None, functions=ORDERS, runner=None, **options) -> Conversation:
    catalog = load_catalog(DATA / "scripted_catalog.toml")
    expert = expert or ScriptedBackend("<message>expert</message>", model="gpt-5")
    opts = ConversationOptions(trajectory=tmp_path / "chat.jsonl", check_endpoints=False, **options)
    return Conversation(load_function_tools(functions), opts, catalog=catalog, runner=runner,
                        backends={"policy": policy, "expert": expert, "unpriced": expert})


async def turn(conv: Conversation, text: str) -> list[ev.Event]:
    return [e async for e in conv.turn(text)]


def tool_messages(events):
    return [e for e in of(events, ev.ConversationMessage) if e.role == "tool"]


@pytest.fixture(autouse=True)
def _fresh_calls():
    conversation_tools.CALLS.clear()


# --- the loop with a scripted policy ----------------------------------------------------------------


async def test_tool_call_result_then_message(tmp_path):
    policy = ScriptedBackend([call("order_status", {"order_id": "A1"}, thinking="look it up"),
                              "<think>found</think>\n<message>Order A1 has shipped.</message>"], model="Qwen/Qwen3-8B")
    conv = conversation(tmp_path, policy)
    events = await turn(conv, "Where is my order A1?")
    await conv.aclose()

    ended = events[-1]
    assert isinstance(ended, ev.TurnEnded)
    assert (ended.status, ended.message, ended.steps, ended.calls) == ("answered", "Order A1 has shipped.", 2, 1)
    assert conversation_tools.CALLS == [("order_status", {"order_id": "A1"})]

    # The tool result went back to the policy as a role "tool" message answering the assistant's call.
    second = policy.calls[1]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "tool"]
    call_id = second[2]["tool_calls"][0]["id"]
    assert second[3] == {"role": "tool", "tool_call_id": call_id, "content": '{"order_id": "A1", "status": "shipped"}'}
    assert second[2]["content"] == ""  # the thinking is not replayed

    # The policy's prompt: reference wording, the format instruction last, call_expert after the tools.
    system = policy.calls[0]["messages"][0]["content"]
    assert system.startswith("<instructions>\nYou are a customer service agent")
    assert "Answer questions about orders." in system and prompts.EXPERT_POLICY in system
    assert system.endswith("message between <message> </message> and the tool call between <tool_call> </tool_call> .")
    names = [t["function"]["name"] for t in policy.calls[0]["tools"]]
    assert names == ["order_status", "add", "explode", "echo", "call_expert"]
    assert (policy.calls[0]["sampling"].temperature, policy.calls[0]["sampling"].max_tokens) == (1.0, 8000)

    # The trajectory holds the tool message verbatim, and every call was charged.
    trajectory = load_trajectory(tmp_path / "chat.jsonl")
    assert trajectory.header["mode"] == "conversation"
    saved = [e for e in trajectory.events if isinstance(e, ev.ConversationMessage) and e.role == "tool"]
    assert [(e.name, e.content, e.tool_call_id) for e in saved] == [
        ("order_status", '{"order_id": "A1", "status": "shipped"}', call_id)]
    charges = of(trajectory.events, ev.Charged)
    assert [(c.kind, c.model) for c in charges] == [("policy", "Qwen/Qwen3-8B"), ("function", "function:order_status"),
                                                   ("policy", "Qwen/Qwen3-8B")]
    assert Decimal(charges[1].cost_usd) == Decimal("0.001")
    assert Decimal(ended.cost_usd) == sum(Decimal(c.cost_usd) for c in charges)


async def test_history_carries_over_turns_and_unpriced_tools_make_cost_unknown(tmp_path):
    policy = ScriptedBackend(["<message>Hello!</message>", call("add", {"a": 2, "b": 3}), "<message>5</message>"],
                             model="Qwen/Qwen3-8B")
    conv = conversation(tmp_path, policy)
    first = await turn(conv, "hi")
    second = await turn(conv, "what is 2 + 3?")
    await conv.aclose()
    assert first[-1].message == "Hello!" and first[-1].cost_usd is not None
    assert [m["role"] for m in policy.calls[1]["messages"]] == ["system", "user", "assistant", "user"]
    assert tool_messages(second)[0].content == "5"  # an async function, awaited
    assert second[-1].message == "5" and second[-1].cost_usd is None  # `add` declares no price
    assert len(of(second, ev.ConversationStarted)) == 0  # announced once, in the first turn


async def test_call_expert_replaces_the_turn(tmp_path):
    policy = ScriptedBackend([call("call_expert", {"expert": "expert-1"}, thinking="too hard"),
                              "<message>The sum is 5.</message>"], model="Qwen/Qwen3-8B")
    expert = ScriptedBackend(['<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>'], model="gpt-5")
    conv = conversation(tmp_path, policy, expert)
    events = await turn(conv, "Add 2 and 3 please")
    await conv.aclose()

    # The expert got the original conversation and the declared tools, not call_expert.
    received = expert.calls[0]
    assert [t["function"]["name"] for t in received["tools"]] == ["order_status", "add", "explode", "echo"]
    assert prompts.EXPERT_POLICY not in received["messages"][0]["content"]
    assert received["messages"][-1]["content"] == "Add 2 and 3 please" + prompts.GPT_EXPERT_NUDGE  # gpt-5 family
    # Its reply replaced the policy's: its call ran, and the history shows its turn, not the policy's.
    assistants = [e for e in of(events, ev.ConversationMessage) if e.role == "assistant"]
    assert assistants[0].source == "expert-1"
    assert [c["function"]["name"] for c in assistants[0].tool_calls] == ["add"]
    assert tool_messages(events)[0].content == "5"
    assert "call_expert" not in json.dumps(policy.calls[1]["messages"][1:])  # the history, past the system
    assert events[-1].message == "The sum is 5." and events[-1].calls == 2
    started = of(events, ev.FunctionCallStarted)
    assert [(s.name, s.executor, s.target) for s in started] == [("call_expert", "expert", "answer-1 (gpt-5)"),
                                                                ("add", "python", "conversation_tools:add")]
    expert_charge = [c for c in of(events, ev.Charged) if c.kind == "expert"]
    assert [(c.alias, c.model) for c in expert_charge] == [("answer-1", "gpt-5")]


async def test_expert_reply_is_the_message_and_bad_expert_is_an_error(tmp_path):
    policy = ScriptedBackend([call("call_expert", {"expert": "expert-2"}), call("call_expert", {"expert": "expert-3"})],
                             model="Qwen/Qwen3-8B")
    expert = ScriptedBackend(["<think>x</think><message>Ask the expert: done.</message>"], model="mystery-model")
    conv = conversation(tmp_path, policy, expert)
    events = await turn(conv, "help")
    await conv.aclose()
    # expert-2 maps to answer-2, which the scripted catalog lacks: not offered, so the call is an error.
    assert tool_messages(events)[0].content.startswith("Error: call_expert needs an expert this conversation offers")
    assert of(events, ev.ConversationStarted)[0].withheld == {"expert-2": "answer-2 is not in catalog scripted"}
    assert events[-1].message == "Ask the expert: done." and events[-1].status == "answered"


async def test_at_most_six_calls_per_reply(tmp_path):
    many = "\n".join(call("add", {"a": i, "b": 1}) for i in range(8))
    policy = ScriptedBackend([many, "<message>done</message>"], model="Qwen/Qwen3-8B")
    conv = conversation(tmp_path, policy)
    events = await turn(conv, "add a lot")
    await conv.aclose()
    assert [c[1]["a"] for c in conversation_tools.CALLS] == [0, 1, 2, 3, 4, 5]
    assert [m.content for m in tool_messages(events)] == ["1", "2", "3", "4", "5", "6"]
    assistant = [e for e in of(events, ev.ConversationMessage) if e.role == "assistant"][0]
    assert len(assistant.tool_calls) == 6 and [json.loads(d["arguments"])["a"] for d in assistant.dropped_calls] == [6, 7]
    assert any("first 6 of 8" in n.message for n in of(events, ev.Notice))


async def test_failures_become_tool_messages(tmp_path):
    replies = "\n".join([call("nope", {}), call("add", {"a": "x", "b": 1}), call("add", "[1, 2]"),
                         call("explode", {}), "<tool_call>\nnot json\n</tool_call>"])
    policy = ScriptedBackend([replies, "<message>sorry</message>"], model="Qwen/Qwen3-8B")
    conv = conversation(tmp_path, policy)
    events = await turn(conv, "break things")
    await conv.aclose()
    contents = [m.content for m in tool_messages(events)]
    assert contents[0] == "Error: there is no tool named 'nope'; the tools are: order_status, add, explode, echo"
    assert contents[1].startswith("Error: invalid arguments at a: 'x' is not of type 'integer'")
    assert contents[2] == "Error: the arguments must be a JSON object"
    assert contents[3] == "Error: RuntimeError: the warehouse is on fire"
    assert contents[4].startswith("Error: the tool call is not a JSON object with a name")
    assert [f.status for f in of(events, ev.FunctionCallFinished)] == ["error"] * 5
    assert events[-1].status == "answered"


async def test_empty_reply_uses_the_reference_placeholder(tmp_path):
    policy = ScriptedBackend(["<think>hmm</think>"], model="Qwen/Qwen3-8B")
    conv = conversation(tmp_path, policy)
    events = await turn(conv, "hi")
    await conv.aclose()
    assert (events[-1].status, events[-1].message) == ("empty", prompts.EMPTY_REPLY)


async def test_max_steps_ends_the_turn(tmp_path):
    policy = ScriptedBackend([call("add", {"a": 1, "b": 1})], model="Qwen/Qwen3-8B")  # calls forever
    conv = conversation(tmp_path, policy, max_steps=3)
    events = await turn(conv, "loop")
    await conv.aclose()
    assert (events[-1].status, events[-1].steps, events[-1].calls) == ("max_steps", 3, 3)


async def test_policy_failure_is_recorded_and_forgotten(tmp_path):
    policy = ScriptedBackend([BackendError("server down"), "<message>back</message>"], model="Qwen/Qwen3-8B",
                             repeat_last=True)
    conv = conversation(tmp_path, policy)
    failed = await turn(conv, "first")
    assert (failed[-1].status, failed[-1].error) == ("error", "the policy failed: server down")
    assert conv.history == []
    ok = await turn(conv, "second")
    await conv.aclose()
    assert ok[-1].message == "back"
    assert [m["content"] for m in policy.calls[1]["messages"][1:]] == ["second"]


async def test_cancelled_turn_is_recorded_and_forgotten(tmp_path):
    policy = ScriptedBackend([call("add", {"a": 1, "b": 2}), "<message>3</message>"], model="Qwen/Qwen3-8B")
    conv = conversation(tmp_path, policy)
    stream = conv.turn("add")
    async for event in stream:
        if isinstance(event, ev.FunctionCallStarted):
            break
    await stream.aclose()
    await conv.aclose()
    assert conv.history == []
    ended = [e for e in load_trajectory(tmp_path / "chat.jsonl").events if isinstance(e, ev.TurnEnded)]
    assert [e.status for e in ended] == ["cancelled"]


async def test_long_history_is_cut_in_the_middle(tmp_path):
    policy = ScriptedBackend(["<message>ok</message>"], model="Qwen/Qwen3-8B")
    conv = conversation(tmp_path, policy)
    for i in range(6):
        await turn(conv, f"message {i} " + "word " * 40)
    conv.context_tokens = conv._fixed_tokens + 200  # room for about four of the twelve messages
    events = await turn(conv, "last")
    await conv.aclose()
    sent = policy.calls[-1]["messages"]
    assert sent[1]["content"].startswith("message 0") and sent[-1]["content"] == "last"
    assert len(sent) < 14 and any("middle messages left out" in n.message for n in of(events, ev.Notice))


# --- pieces --------------------------------------------------------------------------------------------


def test_visible_text():
    assert visible_text("<think>a</think>\n<message>Hi there</message>") == "Hi there"
    assert visible_text('<think>a</think>Sure.\n<tool_call>\n{"name": "x"}\n</tool_call>') == "Sure."
    assert visible_text("plain words") == "plain words"
    assert visible_text("<message>cut off by the token limit") == "cut off by the token limit"


def test_call_expert_description_is_the_reference_and_narrows():
    described = parse_model_description(prompts.CALL_EXPERT_ARGUMENT)
    assert described.render(["expert-1", "expert-2", "expert-3"]) == prompts.CALL_EXPERT_ARGUMENT
    narrowed = described.render(["expert-3"], {"expert-3": (Decimal("0.1"), Decimal("0.2"))})
    assert narrowed.startswith("The expert. Choices: ['expert-3']. expert-3 demonstrates")
    assert narrowed.endswith("\nexpert-3 | $0.1 | $0.2 | 11s") and "expert-1" not in narrowed


def test_expert_messages_by_model_family():
    history = [{"role": "user", "content": "hi"}]
    qwen = prompts.conversation_expert_messages("BASE", history, "Qwen/Qwen3-32B")
    assert qwen[0]["content"].endswith("Wrap message between <message> </message> and the tool call between "
                                       "<tool_call> </tool_call> .") and "<think>" not in qwen[0]["content"]
    assert qwen[1]["content"] == "hi /no_think" and history[0]["content"] == "hi"
    plain = prompts.conversation_expert_messages("BASE", history, "meta-llama/Llama-3.3-70B-Instruct")
    assert plain == [{"role": "system", "content": "BASE"}, {"role": "user", "content": "hi"}]


async def test_http_tool(tmp_path):
    seen: list[tuple[str, dict, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the stdlib's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body, self.headers.get("X-Key")))
            status, payload = (500, b"boom") if body.get("title") == "fail" else (200, b'{"id": 7}')
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if status == 200 else "text/plain")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    declared = tmp_path / "functions_http.toml"
    declared.write_text(
        '[[tools]]\nname = "ticket"\ndescription = "Open a ticket."\n'
        'parameters = { type = "object", properties = { title = { type = "string" } }, required = ["title"] }\n'
        f'http = {{ url = "http://127.0.0.1:{server.server_port}/tickets", headers_env = {{ X-Key = "TICKET_KEY" }} }}\n')
    tool = load_function_tools(declared).get("ticket")
    try:
        missing = await FunctionRunner(env={}).call(tool, '{"title": "x"}')
        runner = FunctionRunner(env={"TICKET_KEY": "s3cret"})
        ok = await runner.call(tool, '{"title": "printer"}')
        failed = await runner.call(tool, '{"title": "fail"}')
    finally:
        server.shutdown()
        server.server_close()
    assert missing.content == "Error: TICKET_KEY is not set (needed for the X-Key header)"
    assert (ok.ok, ok.content, ok.detail) == (True, '{"id": 7}', {"http_status": 200})
    assert seen[0] == ("/tickets", {"title": "printer"}, "s3cret")
    assert (failed.ok, failed.content) == (False, "Error: HTTP 500: boom")


@needs_bwrap
async def test_command_tool_runs_in_the_sandbox(tmp_path):
    declared = tmp_path / "functions_cmd.toml"
    declared.write_text(
        '[[tools]]\nname = "echo"\ndescription = "Echo."\n'
        'parameters = { type = "object", properties = { text = { type = "string" } } }\n'
        'command = ["echo", "said:", "{text}", "{{literal}}"]\n'
        '[[tools]]\nname = "cat"\ndescription = "Read a file."\n'
        'parameters = { type = "object", properties = { path = { type = "string" } } }\n'
        'command = ["cat", "--", "{path}"]\n'
        '[[tools]]\nname = "args"\ndescription = "Show the arguments."\n'
        'parameters = { type = "object", properties = { n = { type = "integer" } } }\n'
        'command = ["printenv", "TOOL_ARGUMENTS"]\n')
    tools = load_function_tools(declared)
    runner = FunctionRunner()
    echoed = await runner.call(tools.get("echo"), '{"text": "$(id) ; rm -rf /"}')
    assert echoed.content == "said: $(id) ; rm -rf / {literal}\n"  # no shell ever saw the text
    assert echoed.detail["runner"] == "bubblewrap"
    hidden = await runner.call(tools.get("cat"), json.dumps({"path": str(declared)}))
    assert not hidden.ok and "No such file" in hidden.content  # host files do not exist inside
    assert (await runner.call(tools.get("args"), '{"n": 3}')).content == '{"n": 3}\n'


async def test_command_without_sandbox_runs_only_when_allowed(tmp_path):
    tool = load_function_tools(ORDERS).get("echo")
    none = SandboxProbe("none", "bwrap is not installed")
    refused = await FunctionRunner(commands=CommandRunner(probe=none)).call(tool, '{"text": "hi"}')
    assert not refused.ok and "not run: no sandbox is available (bwrap is not installed)" in refused.content
    bare = await FunctionRunner(commands=CommandRunner(probe=none, unsafe=True)).call(tool, '{"text": "hi"}')
    assert (bare.content, bare.detail["runner"]) == ("said: hi\n", "unsandboxed-subprocess")
    landlock_only = SandboxProbe("landlock", "Landlock ABI 7 confines Python snippets")
    refused = await FunctionRunner(commands=CommandRunner(probe=landlock_only)).call(tool, '{"text": "hi"}')
    assert not refused.ok and "only the Landlock layer works here" in refused.content


# --- bad declarations ----------------------------------------------------------------------------------

_TOOL = '[[tools]]\nname = "t"\ndescription = "d"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('polcy = "x"\n', "bad.toml: unknown key 'polcy' (did you mean 'policy'?)"),
        ('[[tools]]\nname = "t"\npython = "json:dumps"\n', "bad.toml: tools[0] (t).description: a non-empty description"),
        ('[[tools]]\nname = "1t"\n', "bad.toml: tools[0].name: expected a name"),
        (_TOOL + 'python = "json:dumps"\ncommand = ["echo"]\n', "tools[0] (t): exactly one executor (http, python or "
                                                              "command) is needed, found python, command"),
        (_TOOL, "tools[0] (t): exactly one executor (http, python or command) is needed, found none"),
        (_TOOL + 'python = "json:dumps"\nparameters = { type = "strang" }\n', "tools[0] (t).parameters.type: not a "
                                                                           "valid JSON schema: 'strang' is not valid"),
        (_TOOL + 'python = "json:dumps"\nparameters = { type = "string" }\n', "tools[0] (t).parameters.type: the "
                                                                           "parameters must be a schema of type"),
        (_TOOL + 'python = "json.dumps"\n', "tools[0] (t).python: expected \"package.module:function\""),
        (_TOOL + 'python = "no_such_module_xyz:f"\n', "tools[0] (t).python: cannot import 'no_such_module_xyz' "
                                                      "(ModuleNotFoundError"),
        (_TOOL + 'python = "json:nothing"\n', "tools[0] (t).python: 'json' has no function 'nothing'"),
        (_TOOL + 'python = "json:dumps"\nretries = 3\n', "tools[0] (t): unknown key 'retries'"),
        ('[[tools]]\nname = "call_expert"\ndescription = "d"\npython = "json:dumps"\n', "is reserved for the experts"),
        (_TOOL + 'python = "json:dumps"\n' + _TOOL + 'python = "json:dumps"\n', "tools[1] (t).name: 't' is declared twice"),
        (_TOOL + 'http = { url = "ftp://x" }\n', "tools[0] (t).http.url: expected an http:// or https:// URL"),
        (_TOOL + 'http = { url = "http://x", verb = "GET" }\n', "tools[0] (t).http: unknown key 'verb'"),
        (_TOOL + 'command = ["echo", "{missing}"]\n', "tools[0] (t).command: placeholder {missing} names no declared"),
        (_TOOL + 'command = ["no-such-program-xyz"]\n', "tools[0] (t).command: program 'no-such-program-xyz' is not "
                                                        "found"),
        (_TOOL + 'python = "json:dumps"\nprice_per_call = "-1"\n', "tools[0] (t).price_per_call: expected an amount"),
        (_TOOL + 'python = "json:dumps"\ntimeout_s = 0\n', "tools[0] (t).timeout_s: expected a number > 0"),
        ('[call_expert]\nexperts = { expert-4 = "answer-1" }\n', "bad.toml: call_expert.experts: unknown expert "
                                                                 "'expert-4'"),
        ('[call_expert]\nenabled = false\n', "bad.toml: no [[tools]] declared and call_expert disabled"),
        ("[[tools]\n", "bad.toml: "),
    ],
)
def test_bad_declarations_give_one_line(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(FunctionToolError) as caught:
        load_function_tools(path)
    message = str(caught.value)
    assert expected in message and "\n" not in message


async def test_shipped_example_loads_by_name_and_runs():
    tools = load_function_tools("example")  # a shipped file by name
    assert tools.path == Path(__file__).parents[1] / "tools" / "functions" / "example.toml"
    assert [t.kind for t in tools.tools] == ["python", "command"] and tools.call_expert
    result = await FunctionRunner().call(tools.get("days_in_month"), '{"year": 2024, "month": 2}')
    assert result.content == "[3, 29]"  # 1 February 2024 was a Thursday; a leap year


# --- the command line ----------------------------------------------------------------------------------


def test_chat_command(tmp_path, monkeypatch, capsys):
    from orchestra_tui import cli
    from orchestra_tui.backends import factory
    from orchestra_tui.core import conversation as conversation_mod

    policy = ScriptedBackend([call("order_status", {"order_id": "B2"}), "<message>B2 is processing.</message>",
                              "<message>You're welcome.</message>"], model="Qwen/Qwen3-8B")

    async def no_problems(*args, **kwargs):
        return {}

    monkeypatch.setattr(factory, "make_backend", lambda spec: policy)
    monkeypatch.setattr(conversation_mod, "backend_problems", no_problems)
    monkeypatch.setattr("sys.stdin", io.StringIO("Where is B2?\n\nthanks\n"))
    code = cli.main(["chat", "--functions", str(ORDERS), "--catalog", str(DATA / "scripted_catalog.toml"),
                     "--trajectory", str(tmp_path / "cli.jsonl")])
    out, err = capsys.readouterr()
    assert code == 0
    assert out == "B2 is processing.\nYou're welcome.\n"
    assert '→ order_status {"order_id": "B2"}' in err
    assert cli.main(["chat", "--functions", str(tmp_path / "missing.toml")]) == 2


# --- the acceptance: the real tiny model ---------------------------------------------------------------


@pytest.mark.slow
async def test_tiny_model_calls_a_declared_tool(tmp_path, smollm2_path):
    from orchestra_tui.backends.embedded import SMOLLM2_NAME
    from orchestra_tui.backends.llamacpp import LlamaCppBackend

    catalog = load_catalog("embedded")
    assert catalog.policy.constrain_tool_call  # the grammar forces a well-formed call in the first reply
    backend = LlamaCppBackend(smollm2_path, model_name=SMOLLM2_NAME, n_ctx=4096, seed=3)
    conv = Conversation(load_function_tools(DATA / "functions_weather.toml"),
                        ConversationOptions(trajectory=tmp_path / "real.jsonl", max_steps=3),
                        catalog=catalog, backends={"local": backend})
    events = await turn(conv, "What is the weather in Paris?")
    await conv.aclose()

    ended = events[-1]
    assert isinstance(ended, ev.TurnEnded) and ended.status == "answered" and ended.message
    first = of(events, ev.PolicyOutput)[0]
    assert [c["name"] for c in first.tool_calls] == ["lookup"]
    city = json.loads(first.tool_calls[0]["arguments"])["city"]
    assert conversation_tools.CALLS[0] == ("lookup", {"city": city})
    saved = load_trajectory(tmp_path / "real.jsonl").events
    tool = [e for e in saved if isinstance(e, ev.ConversationMessage) and e.role == "tool"]
    assert [(e.name, e.content) for e in tool] == [("lookup", f"Weather in {city}: sunny, 21 C")]
