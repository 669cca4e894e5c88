"""A json_schema response format (Chat `response_format`, Responses `text.format`) as the model reads it."""

from __future__ import annotations

import json
from typing import Any

from .models import Framing
from .plan import Plan, _as_dict

# Keywords the shown schema leaves out. `required` (a list), `additionalProperties` and `$schema` steer the
# sampler, not the model: wilfredjonathanjames' measurements in openai/openai-cookbook#2140
# (`omit(schema, ["required", "additionalProperties", "$schema"])`); with `required` counted pydantic-ai's
# `anyOf` cases are +17/+26. `default`, `minimum`, `maximum` and `maxItems` are left out too (crewAI's
# cassettes, gpt-4o-mini and gpt-4.1-mini, all strict):
#   * `MemoryAnalysis` (33 cases, +18 with them): `"importance": {"default": 0.5, "maximum": 1.0,
#     "minimum": 0.0, ...}` costs 6 tokens for the default and 12 for the bounds; without them exact;
#   * `StepObservation` (23 cases in two versions, +8 and +2): 14 tokens of `default`s, less the escaped
#     em dashes below; exact without them;
#   * `AgentResponse` (7 cases, +4): `"maxItems": 1` on an array of one `const`; exact without it (and
#     with the newline that joins it to the system message).
# Its siblings (`minItems`, `exclusiveMinimum`, `multipleOf`, `minLength`, `pattern`, `format`) appear in
# no public case and are kept. `const` is shown: pydantic-ai's `final_result` unions (3 cases) are exact
# with it and 6 to 10 under without it; so are `enum`, `title`, `description`, `$defs` and `$ref`
# (crewAI's `TaskEvaluation`, Mirascope's `Book`: `$defs` and their refs exact as sent).
_UNSEEN = frozenset({"additionalProperties", "$schema", "default", "minimum", "maximum", "maxItems"})
_SCHEMA_MAPS = frozenset({"properties", "$defs", "definitions", "patternProperties"})  # name -> schema
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SCHEMA_ONE = frozenset({"items", "not", "contains", "if", "then", "else"})


def _schema_shown(schema: Any) -> Any:
    """A schema node as the model reads it: the keywords in `_UNSEEN` and `required` lists left out at
    every depth. Only schema keywords are read: a property named `default` or `required` stays, and
    the values of `enum`, `const` and `examples` are kept as they are."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k in _UNSEEN or (k == "required" and isinstance(v, list)):
            continue
        if k in _SCHEMA_MAPS and isinstance(v, dict):
            out[k] = {name: _schema_shown(sub) for name, sub in v.items()}
        elif k in _SCHEMA_LISTS and isinstance(v, list):
            out[k] = [_schema_shown(sub) for sub in v]
        elif k in _SCHEMA_ONE:
            out[k] = [_schema_shown(sub) for sub in v] if isinstance(v, list) else _schema_shown(v)
        else:
            out[k] = v
    return out


def schema_text(schema: Any) -> str:
    """The shown schema as compact JSON with non-ASCII characters escaped (`\\u2014`), as Python's
    `json.dumps(..., separators=(",", ":"))` writes it. Evidence: crewAI's `StepObservation` descriptions
    carry em dashes, two in one version (21 cases) and four in the other (2 cases); each costs the 3
    tokens more of its `\\u2014` escape (+6, +12 over the UTF-8 text), and both versions are exact only
    with the escapes. No other public format has a non-ASCII character."""
    return schema if isinstance(schema, str) else json.dumps(_schema_shown(schema), separators=(",", ":"))


def is_json_schema(fmt: Any) -> bool:
    return isinstance(fmt, dict) and fmt.get("type") == "json_schema"


def plan_response_format(plan: Plan, fmt: Any, fr: Framing, chat_alone: bool = False,
                         has_system: bool = True, replies: int = 0) -> None:
    """A json_schema response format is a `# Response Formats` section of the developer message, the
    form openai/harmony's docs/format.md gives ("## {name}", "// {description}", then the schema's
    compact JSON); `Framing.response_format` is what the section costs beyond its text. Flagged: the
    public cases are few (tests/accuracy, category `structured`).

    `chat_alone`: a Chat request with the format and no function tools. Mirascope's gpt-4o cassettes
    count it 1 + tokens(name) above the Responses form of the same request (`int`, `Book` +2,
    `FentanylHandbook` +6: the forced reply names its format, as harmony's `<|constrain|>` marker
    names the format of a constrained message), and, with no system message to join, a message of
    its own (wrapper and role, 4 more: the same request with a system message is 4 less).

    `replies`: how many assistant messages with text the conversation holds (Chat). Each is read as a reply
    in the format, and costs 2 + tokens(name) more, with function tools too (where the next reply is not
    forced into the format, and is not primed with it): Mirascope's
    test_structured_output_resume (gpt-4o, `{"output":7}` replayed under `int`, 2 cases) is 3 under
    without it, crewAI's test_output_pydantic_to_another_task and test_output_json_to_another_task
    (gpt-4o, gpt-4.1-mini, `{"score":4}` under `ScoreOutput`, two tokens) 4 under, and crewAI's
    test_lite_agent_structured_output (gpt-4o-mini, a `search_web` tool, the final `SimpleOutput` JSON reply
    replayed) 4 under; all exact with it.
    The Responses form of Mirascope's request is exact without it (Responses does not name the format)."""
    if is_json_schema(fmt):
        spec = _as_dict(fmt.get("json_schema"), fmt)
        desc = spec.get("description")
        name = spec.get("name") or ""
        head = f"# Response Formats\n\n## {name}\n\n"
        if isinstance(desc, str) and desc:
            head += f"// {desc}\n"
        plan.add(head + schema_text(spec.get("schema")))
        plan.fixed += fr.response_format
        plan.fixed += 2 * replies
        for _ in range(replies):
            plan.add(name)
        if chat_alone:
            plan.fixed += 1
            plan.add(name)
            if not has_system:
                plan.fixed += fr.per_message + 1
        plan.flags.append("response_format_approx")
