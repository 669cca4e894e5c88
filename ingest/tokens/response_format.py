"""A json_schema response format (Chat `response_format`, Responses `text.format`) as the model reads it."""

from __future__ import annotations

from typing import Any

from .models import Framing
from .plan import Plan, _as_dict, _json_text


def _schema_shown(value: Any) -> Any:
    """The schema as the model reads it: `required` lists, `additionalProperties` and `$schema` dropped at
    every depth (they steer the sampler, not the model). Source: wilfredjonathanjames' measurements in
    openai/openai-cookbook#2140 (`omit(schema, ["required", "additionalProperties", "$schema"])`); it
    turns pydantic-ai's `anyOf` cases (+17/+26 with `required` counted) exact."""
    if isinstance(value, dict):
        return {k: _schema_shown(v) for k, v in value.items()
                if k not in ("additionalProperties", "$schema") and not (k == "required" and isinstance(v, list))}
    if isinstance(value, list):
        return [_schema_shown(v) for v in value]
    return value


def plan_response_format(plan: Plan, fmt: Any, fr: Framing, chat_alone: bool = False,
                         has_system: bool = True) -> None:
    """A json_schema response format is a `# Response Formats` section of the developer message, the
    form openai/harmony's docs/format.md gives ("## {name}", "// {description}", then the schema's
    compact JSON); `Framing.response_format` is what the section costs beyond its text. Flagged: the
    public cases are few (tests/accuracy, category `structured`).

    `chat_alone`: a Chat request with the format and no function tools. Mirascope's gpt-4o cassettes
    count it 1 + tokens(name) above the Responses form of the same request (`int`, `Book` +2,
    `FentanylHandbook` +6: the forced reply names its format, as harmony's `<|constrain|>` marker
    names the format of a constrained message), and, with no system message to join, a message of
    its own (wrapper and role, 4 more: the same request with a system message is 4 less)."""
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = _as_dict(fmt.get("json_schema"), fmt)
        desc = spec.get("description")
        name = spec.get("name") or ""
        head = f"# Response Formats\n\n## {name}\n\n"
        if isinstance(desc, str) and desc:
            head += f"// {desc}\n"
        plan.add(head + _json_text(_schema_shown(spec.get("schema"))))
        plan.fixed += fr.response_format
        if chat_alone:
            plan.fixed += 1
            plan.add(name)
            if not has_system:
                plan.fixed += fr.per_message + 1
        plan.flags.append("response_format_approx")
