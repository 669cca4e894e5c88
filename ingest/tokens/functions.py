"""Tool and function definitions as the model reads them: a TypeScript-like namespace.

The API does not show the model the JSON schema of a tool; it renders each function as a
TypeScript type inside `namespace functions { … }` (the form hmarr/openai-chat-tokens and
pamelafox/openai-messages-token-helper document and verify against API-reported counts):

    namespace functions {

    // Get the current weather
    type get_weather = (_: {
    // The city
    location: string,
    unit?: "celsius" | "fahrenheit",
    }) => any;

    } // namespace functions
"""

from __future__ import annotations

from typing import Any

import msgspec


def _as_dict(value: Any, default: Any) -> dict[str, Any]:
    """`value` when it is a mapping, else `default` (keeps JSON walking total and typed)."""
    return value if isinstance(value, dict) else default

def _literal(v: Any) -> str:
    return f'"{v}"' if isinstance(v, str) else msgspec.json.encode(v).decode()


def format_type(schema: Any, indent: int) -> str:
    """One JSON-schema node as a TypeScript type."""
    if not isinstance(schema, dict):
        return "any"
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return " | ".join(_literal(v) for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return " | ".join(format_type(s, indent) for s in schema[key])
    t = schema.get("type")
    if isinstance(t, list):
        return " | ".join(format_type({**schema, "type": x}, indent) for x in t)
    if t == "string":
        return "string"
    if t in ("number", "integer"):
        return "number"
    if t == "boolean":
        return "boolean"
    if t == "null":
        return "null"
    if t == "array":
        items = schema.get("items")
        return f"{format_type(items, indent)}[]" if isinstance(items, dict) else "any[]"
    if t == "object" or "properties" in schema:
        props = schema.get("properties")
        if not isinstance(props, dict) or not props:
            return "object"
        return "{\n" + format_properties(schema, indent + 2) + "\n}"
    return "any"


def format_properties(schema: dict[str, Any], indent: int, undescribed: list[int] | None = None) -> str:
    """The members of an object type, one per line, with descriptions as `//` comments."""
    req = schema.get("required")
    required: list[Any] = req if isinstance(req, list) else []
    lines: list[str] = []
    pad = " " * indent
    for name, prop in (schema.get("properties") or {}).items():
        desc = prop.get("description") if isinstance(prop, dict) and indent == 0 else None
        if isinstance(desc, str) and desc:  # nested members lose their descriptions
            lines.append(f"{pad}// {desc}")
        elif undescribed is not None:
            undescribed[0] += 1
        opt = "" if name in required else "?"
        lines.append(f"{pad}{name}{opt}: {format_type(prop, indent)},")
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


def render_namespace(functions: list[dict[str, Any]], undescribed: list[int] | None = None) -> str:
    """The namespace text; `undescribed` (a one-item list) counts top-level members without a description."""
    lines = ["namespace functions {", ""]
    for fn in functions:
        desc = fn.get("description")
        if isinstance(desc, str) and desc:
            lines.append(f"// {desc}")
        params = _as_dict(fn.get("parameters"), {})
        name = fn.get("name")
        if isinstance(params.get("properties"), dict) and params["properties"]:
            lines.append(f"type {name} = (_: {{")
            lines.append(format_properties(params, 0, undescribed))
            lines.append("}) => any;")
        else:
            lines.append(f"type {name} = () => any;")
        lines.append("")
    lines.append("} // namespace functions")
    return "\n".join(lines)
