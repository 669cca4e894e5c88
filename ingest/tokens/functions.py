"""Tool and function definitions as the model reads them: a TypeScript-like namespace.

The API does not show the model the JSON schema of a tool; it renders each function as a
TypeScript type inside `namespace functions { … }` (the form hmarr/openai-chat-tokens documents,
and that openai/harmony's renderer writes out for the open-weight models):

    namespace functions {

    // Get the current weather
    type get_weather = (_: {
    // The city
    location: string,
    unit?: "celsius" | "fahrenheit",
    }) => any;

    } // namespace functions

Rules, each checked against API-reported counts (tests/accuracy/cases.jsonl):
  * a property's `title` is `// <title>` and an empty `//` line above it (and above its description),
    as openai/harmony's renderer writes it; Pydantic puts a title on every property;
  * a property's `description` is a `// ` comment line above it, at every depth (nested members
    keep theirs: pamelafox's `inner_object_with_enum` cases count them);
  * members of nested objects are written flush left like the top level (indenting them costs
    one token per member more than the API reports);
  * string enums are quoted literals joined by ` | `, other enums their JSON literals;
    `anyOf`, `oneOf` and type lists are unions joined by ` | ` (pydantic-ai's MCP tools count
    `repoName: string | string[]`, once their multi-line descriptions are read as below);
  * a function description is trimmed and written one `// ` comment line per line (`comment_lines`);
  * the parameters object's own `title` is a `// <title>` line before its brace (`type f = (_: // f_args`);
  * a `default` is a trailing ` // default: <json>` comment (as harmony renders it);
  * arrays are `<item type>[]`;
  * a local `$ref` is read in place: the definition's title, description and members at the
    referring property (Pydantic puts nested models in `$defs`); a recursive ref stops at `any`;
  * what the framing prices beside the text is counted here too: undescribed properties, and on the
    gpt-5 family the functions after the first one with parameters that have one (`Framing`).

Legacy `functions` requests (hmarr's cases, verified on gpt-3.5-turbo-0613) were rendered by the
older form: nested members indented by two spaces per level, nested descriptions and defaults
dropped. `render_namespace(..., legacy=True)` writes that form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec


def _as_dict(value: Any, default: Any) -> dict[str, Any]:
    """`value` when it is a mapping, else `default` (keeps JSON walking total and typed)."""
    return value if isinstance(value, dict) else default


def _literal(v: Any) -> str:
    return f'"{v}"' if isinstance(v, str) else msgspec.json.encode(v).decode()


class _Stats:
    """Rendering options, the function's `$defs`, and what the renderer saw that the framing prices
    separately (see `Framing.undescribed_property`)."""

    __slots__ = ("defs", "expanding", "legacy", "number", "undescribed")

    def __init__(self, legacy: bool = False) -> None:
        self.legacy = legacy
        self.undescribed = 0
        self.number = False  # a `number` (not `integer`) type was written (see `Framing.number_function`)
        self.defs: dict[str, Any] = {}
        self.expanding: set[str] = set()  # refs being expanded (a recursive model stops at `any`)


def _resolve(schema: dict[str, Any], stats: _Stats) -> tuple[dict[str, Any], str | None]:
    """A local `$ref` (`#/$defs/X`, `#/definitions/X`) replaced by its definition, the referring
    node's own keys on top; with the ref's name while it is expanded. The model reads the referenced
    type in place: Mirascope's `Book.author: Author` tool (gpt-4o, Chat and Responses) counts the
    Author model's title, description and members at the property, 27 tokens more than `any`."""
    ref = schema.get("$ref")
    if not isinstance(ref, str) or ref in stats.expanding:
        return schema, None
    target = stats.defs.get(ref.rsplit("/", 1)[-1]) if ref.startswith(("#/$defs/", "#/definitions/")) else None
    if not isinstance(target, dict):
        return schema, None
    return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}, ref


def format_type(schema: Any, stats: _Stats, indent: int = 0) -> str:
    """One JSON-schema node as a TypeScript type."""
    if not isinstance(schema, dict):
        return "any"
    schema, ref = _resolve(schema, stats)
    if ref is not None:
        stats.expanding.add(ref)
        try:
            return format_type(schema, stats, indent)
        finally:
            stats.expanding.discard(ref)
    if "$ref" in schema:
        return "any"
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return " | ".join(_literal(v) for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return " | ".join(format_type(s, stats, indent) for s in schema[key])
    t = schema.get("type")
    if isinstance(t, list):
        return " | ".join(format_type({**schema, "type": x}, stats, indent) for x in t)
    if t == "string":
        return "string"
    if t in ("number", "integer"):
        stats.number = stats.number or t == "number"
        return "number"
    if t == "boolean":
        return "boolean"
    if t == "null":
        return "null"
    if t == "array":
        items = schema.get("items")
        return f"{format_type(items, stats, indent)}[]" if isinstance(items, dict) else "any[]"
    if t == "object" or "properties" in schema:
        props = schema.get("properties")
        if not isinstance(props, dict) or not props:
            return "object"
        return "{\n" + format_properties(schema, stats, indent + 2 if stats.legacy else 0) + "\n}"
    return "any"


def _is_string_enum(prop: dict[str, Any]) -> bool:
    enum = prop.get("enum")
    return isinstance(enum, list) and bool(enum) and all(isinstance(v, str) for v in enum)


def format_properties(schema: dict[str, Any], stats: _Stats, indent: int = 0) -> str:
    """The members of an object type, one per line, with descriptions as `//` comments."""
    pad = " " * indent
    req = schema.get("required")
    required: list[Any] = req if isinstance(req, list) else []
    lines: list[str] = []
    for name, raw in (schema.get("properties") or {}).items():
        prop, _ = _resolve(_as_dict(raw, {}), stats)
        desc = prop.get("description")
        title = prop.get("title")
        if isinstance(title, str):
            # A property's `title` is a comment line and an empty comment line above its description, as
            # openai/harmony's json_schema_to_typescript writes it; Mirascope's Pydantic-made tool schemas
            # (116 cases, none exact without it) count it. It does not stand in for a description.
            lines.append(f"{pad}// {title}")
            lines.append(f"{pad}//")
        if isinstance(desc, str) and desc and not (stats.legacy and indent):
            lines.append(f"{pad}// {desc}")
        elif not _is_string_enum(prop) and "anyOf" not in prop:
            # A union property (`anyOf`) is priced at its text: pydantic-ai's MCP cassettes (`repoName:
            # string | string[]`, 4 cases) are exact only without the discount.
            stats.undescribed += 1
        opt = "" if name in required else "?"
        line = f"{pad}{name}{opt}: {format_type(raw, stats, indent)},"
        if "default" in prop and not stats.legacy:
            line += f" // default: {msgspec.json.encode(prop['default']).decode()}"
        lines.append(line)
    return "\n".join(lines)


def function_defs(tools: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """(function definitions, names of built-in tools) from Chat `tools`/`functions` or Responses `tools`."""
    fns: list[dict[str, Any]] = []
    builtin: list[str] = []
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, dict):
            continue
        fn = _as_dict(tool.get("function"), tool)
        if tool.get("type", "function") == "function" and isinstance(fn, dict) and fn.get("name"):
            fns.append(fn)
        else:
            builtin.append(str(tool.get("type")))
    return fns, builtin


def comment_lines(text: str) -> list[str]:
    """A function description as the comment lines the model reads: the text trimmed, each line trimmed
    and written as `// <line>`, a blank line as `//`.

    openai/harmony's renderer also writes one `// ` line per description line, but keeps the lines as they
    are (`// ` on blank lines, indentation kept); the API trims them. Evidence, all API-reported:
      * crewAIInc/crewAI's cassettes, descriptions with one line break (`... coworkers: Researcher, Senior
        Writer\\nThe input to this tool ...`; gpt-4o, gpt-4.1-mini, gpt-4-0125-preview): each break costs
        the `// ` of the next line (one token), 23 cases, none exact with the text as it is;
      * Mirascope's 15,664-character Markdown description (test_caching_tool, 8 cases, Chat and Responses),
        its description with a docstring `Args:` section (test_call_with_strict_tool_and_optional_properties,
        2 cases) and pydantic-ai's MCP tools (`...\\n\\nArgs:\\n    repoName: ...`, 4 cases) are exact with the
        lines trimmed and blank lines as `//`; harmony's untrimmed form is 131 tokens over on the Markdown
        text, writing the text as it is 17 under;
      * one-line descriptions are unchanged (`// <description>`)."""
    return [f"// {line.strip()}".rstrip() for line in text.strip().split("\n")]


@dataclass(frozen=True)
class Namespace:
    """The namespace text and what the framing prices beside it (see `Framing`): `undescribed`, how many
    properties (any depth) have no description and are not string enums; `later_undescribed`, how many
    functions after the first one with parameters have such a property (`Framing.later_undescribed_function`;
    with `count_first`, the first such function counts too); `number_functions`, how many functions have a
    `number` type (`Framing.number_function`)."""

    text: str
    undescribed: int
    later_undescribed: int
    number_functions: int


def render_namespace(functions: list[dict[str, Any]], legacy: bool = False) -> str:
    """The namespace text the model reads for `functions` (`legacy`: the older form, see above)."""
    return describe_namespace(functions, legacy=legacy).text


def describe_namespace(functions: list[dict[str, Any]], legacy: bool = False, count_first: bool = False) -> Namespace:
    """The namespace text with what the framing prices beside it; `count_first`: the tools follow a system
    message, so the first function with parameters counts in `later_undescribed` too (see `HARMONY`)."""
    stats = _Stats(legacy)
    lines = ["namespace functions {", ""]
    with_params = later_undescribed = number_functions = 0
    for fn in functions:
        desc = fn.get("description")
        if isinstance(desc, str) and desc:
            lines.extend(comment_lines(desc))
        params = _as_dict(fn.get("parameters"), {})
        defs = params.get("$defs", params.get("definitions"))
        stats.defs = defs if isinstance(defs, dict) else {}
        name = fn.get("name")
        if isinstance(params.get("properties"), dict) and params["properties"]:
            before = stats.undescribed
            stats.number = False
            title = params.get("title")
            if isinstance(title, str) and title and not legacy:
                # The parameters object's own `title` (openai-agents names it `<function>_args`) is a comment
                # line, written where openai/harmony writes an object's own description: before its brace.
                # traceloop/openllmetry's openai-agents cassettes (gpt-4o and gpt-4.1, Responses, strict) were
                # under by exactly `// <title>\n` per function: `get_city_info_args` -6 (3 cases),
                # `get_weather_args` -5 (2), two `handoff_to_agent_*_args` -16, `search_recipes_args` and
                # `plan_and_apply_recipe_modifications_args` -15 (3); all exact with it, none lost. Without the
                # empty `//` a property's title carries (with it `handoff` is +2). No Chat case has such a title.
                lines.append(f"type {name} = (_: // {title}")
                lines.append("{")
            else:
                lines.append(f"type {name} = (_: {{")
            lines.append(format_properties(params, stats))
            lines.append("}) => any;")
            if (with_params or count_first) and stats.undescribed > before:
                later_undescribed += 1
            with_params += 1
            number_functions += stats.number
        else:
            lines.append(f"type {name} = () => any;")
        lines.append("")
    lines.append("} // namespace functions")
    return Namespace("\n".join(lines), stats.undescribed, later_undescribed, number_functions)
