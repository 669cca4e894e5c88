"""Chat Completions requests: messages in their framing, tool definitions and `tool_choice`, tool calls
and tool results in history (Responses items reuse this after `responses.py` turns them into messages)."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from .functions import describe_namespace, function_defs
from .images import image_tokens
from .models import Framing, framing_for
from .plan import Plan, _as_dict, _json_text
from .response_format import is_json_schema, plan_response_format

_SYSTEM_ROLES = ("system", "developer")


def _content_parts(plan: Plan, content: Any, model: str | None, suffix: str = "") -> None:
    if isinstance(content, str) or content is None:
        plan.add((content or "") + suffix)
        return
    if not isinstance(content, list):
        plan.add(content)
        return
    for part in content:
        if not isinstance(part, dict):
            plan.add(part)
            continue
        ptype = part.get("type")
        if ptype in ("text", "input_text", "output_text", "refusal") or (ptype is None and "text" in part):
            plan.add(part.get("text") if ptype != "refusal" else part.get("refusal"))
        elif ptype in ("image_url", "input_image"):
            img = part.get("image_url")
            url = img.get("url") if isinstance(img, dict) else img
            detail = (img.get("detail") if isinstance(img, dict) else None) or part.get("detail") or "auto"
            tokens, flags = image_tokens(url if isinstance(url, str) else None, str(detail), model)
            plan.fixed += tokens
            plan.flags.extend(flags)
        elif ptype in ("input_audio", "input_file", "file", "audio"):
            plan.flags.append(f"{ptype}_not_counted")
        else:
            plan.add(part.get("text"))
    plan.add(suffix)


def plan_messages(plan: Plan, messages: list[Any], model: str | None, fr: Framing, pad_system: bool) -> None:
    """Each message: its wrapper, role, name, content, tool calls; `pad_system` adds the newline
    that separates the first system message from the tool preamble or response format appended to it."""
    call_names: dict[str, str] = {}
    for msg in _merge_parallel_results(messages) if fr.parallel_wrapper else messages:
        if not isinstance(msg, dict):
            continue
        role = msg.get("role")
        plan.fixed += fr.per_message
        if role == "tool":
            # Rendered under the called function's name, `functions.<name>`, encoded as one text: the
            # dot merges with the name's first letters differently from the name alone (`.d`+`ur`+
            # `ability` against `dur`+`ability`), which pydantic-ai's `durability_…` cassettes count.
            # `tool_result` holds the rest of the wrapper, less the `functions` token counted here.
            tcid = str(msg.get("tool_call_id"))
            name = call_names.get(tcid, "")
            if msg.get("_parallel"):  # the results of one turn of parallel calls (`_merge_parallel_results`)
                plan.flags.append("parallel_tool_results_approx")
                plan.fixed += fr.parallel_results
            elif name:
                plan.add("functions." + name)
                plan.fixed -= 1
        elif fr.roles:
            plan.add(role if isinstance(role, str) else None)
        suffix = ""
        if pad_system and role in _SYSTEM_ROLES:
            suffix, pad_system = "\n", False
        _content_parts(plan, msg.get("content"), model, suffix)
        if role == "assistant" and msg.get("content"):
            plan.fixed += fr.assistant_channel
        # A tool message's own `name` (a field older SDKs and crewAI send) is not read: the result is rendered
        # under the called function's name (above), once. crewAI's tool-history cassettes (40 cases, gpt-3.5-turbo,
        # gpt-4o, gpt-4o-mini, gpt-4.1-mini, gpt-5-nano) were 3 to 27 over with it priced as a message name,
        # none exact; without it the 25 without parallel calls are exact, none lost.
        if isinstance(msg.get("name"), str) and role != "tool":
            plan.add(fr.name_prefix + msg["name"])
            plan.fixed += fr.per_name
        if role == "function":
            plan.fixed -= 2  # the function's name replaces the role
        elif role == "tool":
            plan.fixed += fr.tool_result + (fr.responses_tool_result if msg.get("_responses") else 0)
        if isinstance(msg.get("refusal"), str) and role == "assistant" and not msg.get("content"):
            plan.add(msg["refusal"])
        calls = [tc for tc in msg.get("tool_calls") or () if isinstance(tc, dict) and isinstance(tc.get("function"), dict)]
        if calls:
            plan.fixed += fr.tool_calls_message
            stored = sum(1 for tc in calls if tc.get("_stored"))
            if stored:
                plan.fixed += fr.responses_stored_call * stored
                plan.flags.append("stored_function_call_approx")
            for tc in calls:
                call_names[str(tc.get("id"))] = str(tc["function"].get("name") or "")
            if len(calls) == 1 or not fr.parallel_wrapper:
                for tc in calls:
                    plan.fixed += fr.tool_call
                    plan.add(tc["function"].get("name"))
                    args = tc["function"].get("arguments")
                    plan.add(args if msg.get("_responses") else _compact_json(args))
            else:  # parallel calls reach the model as one call of `multi_tool_use.parallel`
                plan.fixed += fr.tool_call + fr.parallel_call
                plan.add(parallel_call_text(calls))
        fc = msg.get("function_call")
        if isinstance(fc, dict):
            plan.fixed += 3
            plan.add(fc.get("name"))
            plan.add(fc.get("arguments"))


def _merge_parallel_results(messages: list[Any]) -> list[Any]:
    """The messages with each run of results of one turn of parallel calls made one tool message.

    Several calls in one assistant turn reach the model as one `multi_tool_use.parallel` call, and their
    results come back as one message: the outputs as a JSON array, `["...", "..."]` (items separated by
    `, `, non-ASCII kept), under no function name; `Framing.parallel_results` is what it costs beyond its
    wrapper, `tool_result` and the array. Evidence, API-reported, every public parallel conversation on a
    classic model, 16 cases: pydantic-ai (`delete_file` + `create_file`, outputs "true", "Success"),
    Mirascope (`secret_retrieval_tool` twice), crewAI's test_hierarchical_process (gpt-4o, two
    `ask_question_to_coworker` results of 1,000+ characters with line breaks, quotes and a `’`, 4 cases),
    TestOpenAIStructuredPlanning (gpt-4o, three `read_website` results, 2 cases) and the parallel
    native-tool-calling test (gpt-4o-mini, three results): all exact with the array and 5. Each result as
    a message of its own (quoted) leaves 10 to 11 tokens beside the text, depending on the conversation;
    a comma-joined array (`","`) 10 to 13; the array with `, ` is 10 in every one. crewAI's gpt-5-nano
    parallel conversation (3 cases) is left with the -4 its tools-only requests have. The Responses form
    (Mirascope's `secret_retrieval_tool` replayed with stored call ids, 6 cases) was +13 and is +15: its
    calls may not be one `multi_tool_use.parallel` call at all; unresolved."""
    out: list[Any] = []
    parallel: set[str] = set()
    for msg in messages:
        if not isinstance(msg, dict):
            out.append(msg)
            continue
        calls = [tc for tc in msg.get("tool_calls") or () if isinstance(tc, dict) and isinstance(tc.get("function"), dict)]
        if calls:
            parallel = {str(tc.get("id")) for tc in calls} if len(calls) > 1 else set()
        if msg.get("role") == "tool" and str(msg.get("tool_call_id")) in parallel:
            content = msg.get("content")
            item = content if isinstance(content, str) else _json_text(content)
            last = out[-1] if out else None
            if isinstance(last, dict) and last.get("_parallel") and str(msg.get("tool_call_id")) not in last["_ids"]:
                last["_items"].append(item)
                last["_ids"].add(str(msg.get("tool_call_id")))
                last["content"] = _array_text(last["_items"])
            else:
                out.append({"role": "tool", "content": _array_text([item]), "_parallel": True, "_items": [item],
                            "_ids": {str(msg.get("tool_call_id"))}, "_responses": msg.get("_responses")})
            continue
        out.append(msg)
    return out


def _array_text(items: list[str]) -> str:
    return json.dumps(items, ensure_ascii=False)


def _decoded(args: Any) -> Any:
    """Tool-call arguments as a JSON value: the text decoded, or the value itself when it is not JSON text."""
    if not isinstance(args, str):
        return args
    try:
        return msgspec.json.decode(args)
    except msgspec.DecodeError:
        return args


def _compact_json(text: Any) -> Any:
    """Chat tool-call arguments as the model reads them: parsed and re-encoded without spaces, as the
    arguments of parallel calls are (pydantic-ai's `{"path": ".env"}` calls count compact). Mirascope's
    Chat replay of `{"n": 100}` counts one token less than the text; its Responses replay keeps it."""
    value = _decoded(text)
    return text if value is text else msgspec.json.encode(value).decode()


def parallel_call_text(calls: list[dict[str, Any]]) -> str:
    """The `multi_tool_use.parallel` call that stands for several tool calls in one assistant turn."""
    uses = []
    for tc in calls:
        fn = tc["function"]
        uses.append({"recipient_name": f"functions.{fn.get('name')}", "parameters": _decoded(fn.get("arguments"))})
    return "multi_tool_use.parallel" + msgspec.json.encode({"tool_uses": uses}).decode()


def plan_tools(plan: Plan, tools: Any, fr: Framing, has_system: bool, responses: bool = False,
               legacy: bool = False, after_system: bool = False) -> bool:
    """Function tools as the namespace text plus the preamble; built-in tools are flagged.

    Legacy `functions` requests (hmarr's cases, gpt-3.5-turbo-0613) price an undescribed property at
    its text; `tools` requests one token less (see `Framing.undescribed_property`). `after_system`: the
    conversation opens with a system message (see `HARMONY`)."""
    fns, builtin = function_defs(tools)
    for b in builtin:
        plan.flags.append(f"builtin_tool_{b}_not_counted")
    if not fns:
        return False
    namespace = describe_namespace(fns, legacy=legacy, count_first=after_system)
    plan.add(namespace.text)
    if not legacy:
        plan.fixed += fr.undescribed_property * namespace.undescribed
        plan.fixed += fr.later_undescribed_function * namespace.later_undescribed
        plan.fixed += fr.number_function * namespace.number_functions
    if responses:
        plan.fixed += fr.responses_tools_with_instructions if has_system else fr.responses_tools
    else:
        plan.fixed += fr.tools_preamble + fr.developer_preamble + (fr.tools_in_system if has_system else 0)
    return True


def plan_tool_choice(plan: Plan, choice: Any, legacy: bool, fr: Framing) -> None:
    """`none` costs a token (classic models); a named function its name plus a wrapper; `auto` nothing."""
    if choice == "none":
        plan.fixed += fr.choice_none
    elif choice == "required":
        plan.flags.append("tool_choice_required_approx")
    elif isinstance(choice, dict):
        fn = _as_dict(choice.get("function"), choice)
        name = fn.get("name") if isinstance(fn, dict) else None
        if isinstance(name, str):
            plan.fixed += 4 if legacy else fr.choice_named
            plan.add(name)


def _opens_with_system(messages: list[Any]) -> bool:
    """Whether the conversation starts with a system/developer message, the one the tool definitions join.

    Only a leading one hosts them: a system message later in the conversation is an ordinary turn, and
    the tools get a message of their own at the top (`Framing.tools_in_system` is not taken, and the
    pad newline is not added). Evidence: pydantic-ai's tool-availability cassette on gpt-5 (user, system,
    user; tools) counts the 4 tokens of that message, where its cases with a leading system message, and
    hmarr's and the cookbook's (system first, a second system later), join it. (On the gpt-5 family no
    system message takes the tools' wrapper, `HARMONY.tools_in_system`, so that cassette is exact either way.)"""
    first = messages[0] if messages else None
    return isinstance(first, dict) and first.get("role") in _SYSTEM_ROLES


def _has_tool_history(messages: list[Any]) -> bool:
    return any(isinstance(m, dict) and (m.get("tool_calls") or m.get("role") in ("tool", "function")) for m in messages)


def plan_chat(plan: Plan, request: dict[str, Any], model: str | None) -> None:
    fr = framing_for(model)
    messages = request.get("messages")
    if not isinstance(messages, list):
        plan.flags.append("messages_not_a_list")
        return
    tools = request.get("tools") if request.get("tools") else request.get("functions")
    fns, _ = function_defs(tools)
    has_system = _opens_with_system(messages)
    fmt = request.get("response_format")
    # A json_schema format joins the leading system message after a newline, as the tools do: the newline
    # is encoded with the system text, so it is free after a `.` (`.\n` is one token) and a token after a
    # word. crewAI's structured cases (system + user, no tools) show it: the 13 whose system message ends
    # in a word (`...Validate the output of the task`, `...Score the title`, a closing code fence) were
    # one under, the 29 ending in a full stop exact; with the newline all 42 are exact.
    pad = bool(fns) or is_json_schema(fmt)
    plan_messages(plan, messages, model, fr, pad_system=pad and has_system)
    plan.fixed += fr.reply
    legacy = not request.get("tools")
    plan_tools(plan, tools, fr, has_system, legacy=legacy, after_system=has_system)
    if fns:
        plan_tool_choice(plan, request.get("function_call") if legacy else request.get("tool_choice"), legacy, fr)
    replies = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant" and m.get("content"))
    plan_response_format(plan, fmt, fr, chat_alone=not fns, has_system=has_system, replies=replies)
    if isinstance(request.get("web_search_options"), dict):
        plan.flags.append("web_search_not_counted")
