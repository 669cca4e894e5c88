"""Model name -> vocabulary, and the message framing each model family puts around a prompt.

The framing numbers are the tokens the API adds that no request field spells out: the
`<|im_start|>role<|im_sep|>…<|im_end|>` wrapper of each message, the primed assistant reply,
and the tool preamble (`# Tools` / `## functions` around the TypeScript namespace). They were
measured against API-reported counts (see tests/accuracy/cases.jsonl, each case with its source).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

_O200K_PREFIXES = ("gpt-5", "gpt-4.1", "gpt-4.5", "gpt-4o", "chatgpt-4o", "o1", "o3", "o4", "gpt-oss", "codex",
                   "computer-use", "gpt-realtime", "gpt-audio", "gpt-6", "gpt-image", "chatgpt-")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding", "davinci-002", "babbage-002")
_OLD_PREFIXES = ("text-davinci", "text-curie", "text-babbage", "text-ada", "code-", "davinci", "curie", "babbage", "ada")
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "codex", "gpt-oss", "computer-use")
_NOT_REASONING = ("gpt-5-chat", "gpt-5.1-chat", "gpt-5.2-chat", "gpt-5.3-chat")


def base_model(model: str) -> str:
    """`ft:gpt-4o-mini-2024-07-18:org::id` -> `gpt-4o-mini-2024-07-18`; `openai/gpt-4o` -> `gpt-4o`."""
    m = model.strip().lower()
    if m.startswith("ft:"):
        m = m[3:].split(":", 1)[0]
    if "/" in m:
        m = m.rsplit("/", 1)[1]
    return m


def encoding_for_model(model: str | None) -> tuple[str, list[str]]:
    """(encoding name, flags). Unknown models fall back to o200k_base and are flagged."""
    if not model:
        return "o200k_base", ["unknown_model"]
    m = base_model(model)
    if m.startswith(_O200K_PREFIXES):
        return "o200k_base", []
    if m.startswith(_CL100K_PREFIXES):
        return "cl100k_base", []
    if m.startswith(_OLD_PREFIXES):
        return "cl100k_base", ["legacy_encoding_approximated"]
    return "o200k_base", ["unknown_model"]


def is_reasoning_model(model: str | None) -> bool:
    """o-series and gpt-5 reasoning models: their output carries hidden reasoning tokens."""
    m = base_model(model or "")
    return m.startswith(_REASONING_PREFIXES) and not m.startswith(_NOT_REASONING)


@dataclass(frozen=True, slots=True)
class Framing:
    """Tokens a model family adds around the request's own text."""

    per_message: int = 3  # <|im_start|>, <|im_sep|> (or <|message|>), <|im_end|>
    # A message's `name` is read after its role as one text `:<name>`, as openai/harmony writes an author
    # (`render_text_into(format!(":{name}"))`): the colon and the name are encoded together, so a name the
    # vocabulary joins to the colon costs one token less than colon plus name. Arize-ai/openinference's
    # autogen-agentchat cassettes (gpt-4o-2024-08-06) name user messages `user`; `:user` is one token in
    # both vocabularies, and all 5 requests were one over with the name encoded alone after a colon token;
    # every other named message in the suite (the cookbook's `example_user`/`example_assistant` on 12 models,
    # hmarr's function messages, autogen's `primary`/`critic`) encodes the same either way.
    name_prefix: str = ":"
    per_name: int = 0  # beyond `name_prefix` + name
    reply: int = 3  # <|im_start|>assistant<|im_sep|> priming the reply
    tools_preamble: int = 9  # "# Tools\n\n## functions\n\n" and its message wrapper
    tools_in_system: int = -4  # when a system message exists the tools join it (no wrapper of their own)
    tool_call: int = 4  # per assistant tool call ("functions." + name + "\n" wrapper)
    tool_calls_message: int = 0  # per assistant message that carries tool calls
    tool_result: int = 2  # per tool message, beyond the message wrapper, the function's name and the content
    parallel_wrapper: bool = True  # several calls in one turn are rendered as one multi_tool_use.parallel call
    parallel_call: int = -2
    parallel_results: int = 5  # the one message holding a parallel turn's results, beyond wrapper, tool_result, array
    reasoning: bool = False
    developer_preamble: int = 0  # o-series/gpt-5 with tools: the platform's own developer/system text
    responses_tools: int = 3  # Responses API: the tool preamble (no system merge, no platform developer text)
    responses_tools_with_instructions: int = 3
    responses_tool_result: int = -2  # Responses function_call_output items cost 2 less than chat tool messages
    # A Responses `function_call` item that carries its output item `id` (`fc_…`, as SDKs replay a
    # stored response) is read from the stored item, not from the request's text: Mirascope's gpt-4o
    # and gpt-4o-mini cassettes count 26 of 35 such items 3 tokens above the same item without an id
    # (pydantic-ai's id-less items are exact), 3 at 0 and 6 at 5 for requests that differ only in their
    # ids, so the spread is server-side; 3 is the most common value, and the estimate is flagged. An item whose
    # `call_id` is the output item's id (`fc_…`, no `id`), as posit-dev/chatlas replays calls with `store: false`,
    # costs the same 3: its gpt-5.4 cassettes were 3 under per such call on all 36 calls (33 requests, one or
    # two calls each), and are exact with it, none lost.
    responses_stored_call: int = 3
    choice_none: int = 1  # tool_choice "none"
    choice_named: int = 7  # tool_choice naming a function, plus the name's tokens
    # A property (any depth) without a description, other than a string enum, costs one token less
    # than its text in `tools` requests: measured on gpt-35-turbo (pamelafox's cases) and gpt-4o/4.1
    # (pydantic-ai's cassettes); legacy `functions` requests (hmarr's cases) price it at its text.
    undescribed_property: int = -1
    # Each function after the first function with parameters that has a property without a description
    # (in `undescribed_property`'s sense), on the gpt-5 family (HARMONY: -1; see there). Other families: 0.
    later_undescribed_function: int = 0
    # A function with a property (any depth) of JSON type `number` costs one token more than its text, however
    # many such properties it has (`integer` is written `number` too, at its text). Every public `tools`
    # case with a `number` was under by one, every `integer` one exact: openllmetry's agno `add_numbers`
    # (gpt-4o-mini, `a`, `b: number`, Chat and its history, API 56 and 78), crewAI's TrainingTaskEvaluation
    # (`quality: number`, gpt-4o-mini, API 2918) and TaskEvaluation (`quality: number`, 4 cases, -5 before, -4
    # after: its array of `Entity` objects is the rest); `integer` in 9 tools (crewAI, Mirascope, pydantic-ai)
    # is exact without it. hmarr's legacy `functions` cases with `number` are exact without it (another form).
    # Measured on gpt-4o-mini only; no mechanism is known.
    number_function: int = 1
    roles: bool = True  # the role name is text the model reads
    # A json_schema response format beyond its section's text: one token on gpt-4o (pydantic-ai's five
    # gpt-4o cases), none on reasoning models (gpt-5.4-mini's case; openai/openai-cookbook#2140 also
    # finds o4-mini one token under gpt-4o with a format).
    response_format: int = 1
    # An assistant message with text content in the conversation, beyond its wrapper, role and text: the
    # gpt-5 family reads earlier replies as harmony's final-channel messages (`<|channel|>final`, 2 tokens;
    # openai/harmony docs/format.md). pydantic-ai's and Mirascope's gpt-5 Responses cassettes count 2 per
    # such message (test_openai_responses_thinking_part_from_other_model: 2 messages, 4; test_call_with_thinking
    # and test_openai_responses_model_thinking_part: 1 message, 2); o3-mini (pydantic-ai
    # test_openai_model_thinking_part, Chat) counts none, so the o-series keep 0.
    assistant_channel: int = 0


CLASSIC = Framing()
O200K_CLASSIC = Framing()
CL100K_0301 = Framing(per_message=4, name_prefix="", per_name=-1)  # the name replaces the role
# The o-series read function tools as the classic models do: no platform developer text, a tool result
# 2 beyond its name and content, the undescribed-property discount; one token more for the tool preamble.
# Evidence: crewAI's o3-mini cassettes (test_agent_powered_by_new_o_model_family_that_uses_tool and
# ..._that_allows_skipping_tool, Chat, API prompt_tokens 113/178 and 133/197): with the gpt-5 values below
# they were 80 to 88 over. Without the developer text, the tool-history request of each is 6 over its
# tools-only request with `tool_result` 8 (2 fits both); with `tools_preamble` 9 the tool without parameters
# is 1 under and the tool with two undescribed properties 1 over, both 1 under with the discount, both exact
# with it and 10. The gpt-5 values were measured on pydantic-ai's gpt-5 and gpt-5-mini cassettes and stay
# with the gpt-5 family (HARMONY).
REASONING = Framing(reply=2, reasoning=True, tools_preamble=10, responses_tools=8, responses_tools_with_instructions=22,
                    choice_none=0, choice_named=-2, response_format=0)
# The gpt-5 family: harmony's final channel on earlier replies (see `Framing.assistant_channel`); with tools
# the platform's developer text (81) and a tool result of 8 beyond name and content; no undescribed discount.
# A leading system message does not absorb the tool preamble's wrapper (`tools_in_system` 0): crewAI's
# gpt-5-nano native-tool-calling cassettes (system + user, 1 and 3 strict tools, 3 tools-only requests and
# 3 with a parallel history) were all 4 under with the classic merge (-4), exact without it. pydantic-ai's
# gpt-5 Chat tool requests all open with a user message, so nothing else is measured for this.
# No per-property undescribed discount, but each function after the first function with parameters that has an
# undescribed property costs one token less (`later_undescribed_function`). pydantic-ai's cassettes, API-reported,
# were over by exactly the number of such functions: test_tool_search_eval (gpt-5.4-mini, Chat: `get_weather`,
# `get_exchange_rate`, `search_tools` +1, 2 cases; with `stock_lookup` +2, 2 cases), test_tool_choice_matrix
# [tools_plus_output] (gpt-5-mini, `get_weather`, `get_time`, `final_result`, tool_choice required: +2 in Chat,
# Chat history and Responses), test_openai_deferred_capability_tools (gpt-5.2 Responses, `load_capability`
# (described), `bar`, `search_tools`: +1, 2 cases). Two sets say which functions count: a first function
# without parameters does not start the count (gpt-5's `always_ready`, `lookup_exchange_rate`, `search_tools`,
# 5 cases exact), and a first function with only described properties does (gpt-5.2's `bar`, +1). A later
# function whose properties are all described costs its text (`search_tools` after `get_weather`, gpt-5.4-mini,
# 4 cases exact). Single-function requests are unchanged. The two-function requests with a named tool_choice
# (gpt-5-mini, `get_weather` + `get_time` or `final_result`, Chat and Responses, 4 cases) then read the named
# choice at -2, not the -3 measured on them before the rule (`REASONING.choice_named`; the o-series has no
# named-choice case). When the conversation opens with a system message, the first function with parameters
# counts too: posit-dev/chatlas's gpt-5.4 Responses cassettes (system + user, one or two strict functions whose
# first has an undescribed property, 40 requests, with and without replayed calls and a json_schema format) were
# all one over, and exact with it; the same functions after a user message alone (27 requests there and in
# pydantic-ai) and functions without properties after a system message (19) are exact either way. No Chat case has
# a system message before a function with an undescribed property. No mechanism is known: harmony's renderer
# writes every function the same way.
HARMONY = replace(REASONING, assistant_channel=2, tools_preamble=9, undescribed_property=0, later_undescribed_function=-1,
                  developer_preamble=81, tool_result=8, tools_in_system=0)


# The search models (gpt-4o-search-preview, gpt-4o-mini-search-preview) report the message contents
# alone as prompt tokens: no wrapper, no role, no reply priming (pydantic-ai's web-search cassettes:
# 6 + 5 and 6 + 6 tokens of content reported as 11 and 12).
SEARCH = Framing(per_message=0, name_prefix="", per_name=0, reply=0, roles=False)


def framing_for(model: str | None) -> Framing:
    m = base_model(model or "")
    if "-search-preview" in m:
        return SEARCH
    if m.startswith("gpt-3.5-turbo-0301"):
        return CL100K_0301
    if is_reasoning_model(m):
        return HARMONY if m.startswith("gpt-5") else REASONING
    return O200K_CLASSIC if encoding_for_model(m)[0] == "o200k_base" else CLASSIC
