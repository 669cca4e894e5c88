"""Safe YAML loading that remembers where each value was, and the one helper that renders
pydantic errors as `file:line: field: message` (rule files, profiles, price files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import ConfigError

MAX_YAML_BYTES = 2 << 20
MAX_YAML_NODES = 200_000  # after alias expansion; a large real rule file has a few thousand
MAX_YAML_DEPTH = 200
M = TypeVar("M", bound=BaseModel)


def load_yaml_model(path: str | Path, model: type[M], what: str, shape_hint: str,
                    empty_ok: bool = False) -> tuple[M, yaml.Node | None]:
    """Read, safely parse and validate a YAML mapping; every error names file, line and field.

    The one loader behind rule files, mapping profiles and price files. Returns the model and the
    YAML node tree (for later errors that need line numbers).
    """
    p = Path(path)
    try:
        data_bytes = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read {what}: {exc.strerror}") from exc
    try:
        text = data_bytes.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data_bytes[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{p}:{line}: {what} is not UTF-8 text (byte 0x{data_bytes[exc.start]:02x}); "
                          f"save it as UTF-8") from None
    data, root = load_yaml_with_marks(text, p)
    if data is None and empty_ok:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}:1: {shape_hint}")
    try:
        return model.model_validate(data), root
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, p, root, what)) from None


def load_yaml_with_marks(text: str, path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse with the safe loader only (no tags that construct objects); keep the node tree."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{path}: file is over {MAX_YAML_BYTES // (1 << 20)} MiB; not a rule or profile file")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        check_expansion(root, path)  # before anything walks the tree: aliases make it a graph
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply; refusing the file") from None
    return data, root


def check_expansion(root: yaml.Node | None, path: Path, limit: int = MAX_YAML_NODES) -> None:
    """Refuse a document whose aliases would expand past `limit` nodes (a "billion laughs" file).

    The composed tree shares one node per anchor, so this costs one visit per distinct node;
    validation or a walk over the loaded data would visit every expanded copy.
    """
    if root is None:
        return
    sizes: dict[int, int] = {}
    seen_twice: list[yaml.Node] = []  # the first node reached again through an alias

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            if sizes[key] < 0:
                raise ConfigError(f"{path}:{node.start_mark.line + 1}: YAML alias refers to itself; refusing the file")
            if not seen_twice:
                seen_twice.append(node)
            return sizes[key]
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"{path}:{node.start_mark.line + 1}: YAML nested over {MAX_YAML_DEPTH} levels; refusing the file")
        sizes[key] = -1
        total = 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k, depth + 1) + size(v, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for v in node.value:
                total += size(v, depth + 1)
        if total > limit:
            first = f" (an anchor repeated from line {seen_twice[0].start_mark.line + 1})" if seen_twice else ""
            raise ConfigError(f"{path}:{node.start_mark.line + 1}: YAML aliases expand this file to over {limit:,} "
                              f"values{first}, an alias bomb?; refusing it. Write repeated parts out.")
        sizes[key] = total
        return total

    size(root, 0)


def line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest node along `loc` that exists in the YAML tree."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == str(part):
                    node = v
                    line = k.start_mark.line + 1
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            continue  # pydantic adds union-member names to loc: skip those
    return line


# Where each kind of YAML file is documented, named by an "unknown field" error.
REFERENCES = {
    "rule file": "the rule-file reference in README.md (\"Rule files\")",
    "profile": "the mapping-profile example in README.md (\"Supported log formats\")",
    "sources file": "the sources-file reference in README.md (\"Sources files\")",
    "price file": "the price-file example in README.md (\"Cost\")",
}


def format_validation_error(exc: ValidationError, path: Path, root: yaml.Node | None, what: str = "rule file") -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        shown = ".".join(str(p) for p in loc if not _is_union_tag(p)) or "(top level)"
        line = line_of(root, loc)
        where = f"{path}:{line}" if line else str(path)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown field (check the spelling; see {REFERENCES.get(what, REFERENCES['rule file'])})"
        elif err["type"] == "value_error" and err.get("ctx", {}).get("error") is not None:
            msg = str(err["ctx"]["error"])  # our validators' own words, without pydantic's "Value error, "
        lines.append(f"{where}: {shown}: {msg}")
    return "\n".join(lines)


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-") or part in ("str", "int", "float"))
