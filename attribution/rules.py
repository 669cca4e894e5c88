"""The rule-file model: YAML validated by pydantic, then compiled into condition trees.

Errors name file, line and field. A rule may name a full API key (`api_key: sk-…`): it is
fingerprinted at load time with the warehouse secret and the key itself is dropped.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import re2
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ingest.errors import ConfigError
from ingest.keys import KeyHasher, looks_like_key, scrub_text, strip_scheme
from ingest.schema import CALL_COLUMNS
from ingest.yamlerrors import line_of, load_yaml_model

STANDARD_DIMENSIONS = ("key_name", "team", "feature", "end_user")
OPERATORS = ("eq", "in", "glob", "regex", "prefix", "suffix", "cidr", "exists", "gt", "gte", "lt", "lte")
NUMERIC_COLUMNS = frozenset(
    c for c in CALL_COLUMNS if c.endswith("_tokens") or c in ("status_code", "latency_ms", "source_offset")
)
BOOL_COLUMNS = frozenset({"stream", "batch"})
MAX_REGEX_CHARS = 1000
_DIM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
_RESERVED = frozenset(CALL_COLUMNS) | {"date", "day", "cost_usd", "ruleset_hash", "price_source"}
Scalar = str | int | float | bool


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=100)
    when: dict[str, Any] = Field(default_factory=dict)
    value: str | int | float

    @field_validator("id")
    @classmethod
    def _id_chars(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.:\-]+", v):
            raise ValueError("rule ids use letters, digits and _ . : - only")
        return v


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    scope: dict[str, Scalar] = Field(default_factory=dict)
    limit_usd: float | None = Field(default=None, gt=0)
    limit_tokens: int | None = Field(default=None, gt=0)
    period: Literal["day", "week", "month"] = "month"
    timezone: str = "UTC"
    warn_at: list[float] = Field(default_factory=lambda: [0.8])

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        """Checked here, with the file's line, not when a budget is first evaluated (where a typo would only
        stop the alerts)."""
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name like Europe/Berlin)") from None
        return v

    @field_validator("warn_at")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0 < x < 1 for x in v):
            raise ValueError("warn_at holds fractions of the limit between 0 and 1, e.g. [0.5, 0.8]")
        return sorted(v)


class Allowlist(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    scope: dict[str, Scalar] = Field(default_factory=dict)
    cidrs: list[str] = Field(min_length=1)


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = 1
    rules: dict[str, list[Rule]] = Field(default_factory=dict)
    defaults: dict[str, str] = Field(default_factory=dict)
    budgets: list[Budget] = Field(default_factory=list)
    allowlists: list[Allowlist] = Field(default_factory=list)


# -- compiled conditions --------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    field: str  # a call column, `metadata.<name>`, or an earlier dimension
    op: str
    value: Any


@dataclass(frozen=True)
class Combo:
    kind: Literal["all", "any", "not"]
    parts: tuple[Condition, ...]


Condition = Leaf | Combo


@dataclass
class CompiledRule:
    id: str
    condition: Condition | None  # None: always matches
    template: list[tuple[str, str]]  # ("lit", text) | ("field", name) | ("capture", name)
    captures: dict[str, tuple[str, str, int]]  # capture name -> (field, pattern, group index)
    line: int | None = None


@dataclass
class RuleSet:
    dimensions: dict[str, list[CompiledRule]]  # in evaluation order
    defaults: dict[str, str]
    budgets: list[Budget]
    allowlists: list[Allowlist]
    hash: str
    canonical: str
    source: str | None = None
    rule_count: int = field(default=0)

    def dimension_names(self) -> list[str]:
        return list(self.dimensions)


class _Err(Exception):
    def __init__(self, loc: tuple[Any, ...], msg: str) -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg


def _known_fields(dims_so_far: list[str]) -> set[str]:
    return set(CALL_COLUMNS) | set(dims_so_far) | {"api_key"}


def _compile_leaf(fname: str, spec: Any, loc: tuple[Any, ...], dims: list[str], hasher: KeyHasher | None) -> list[Condition]:
    if not (fname in _known_fields(dims) or fname.startswith("metadata.") and len(fname) > 9):
        close = difflib.get_close_matches(fname, sorted(_known_fields(dims)), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        later = " (dimensions can only use dimensions defined before them)" if fname in STANDARD_DIMENSIONS else ""
        raise _Err(loc, f"unknown field {fname!r}{hint}{later}; use a call column, metadata.<name> or an earlier dimension")
    if not isinstance(spec, dict):
        spec = {"eq": spec}
    if not spec:
        raise _Err(loc, "empty matcher; give a value or one of: " + ", ".join(OPERATORS))
    out: list[Condition] = []
    for op, value in spec.items():
        oloc = (*loc, op)
        if op not in OPERATORS:
            close = difflib.get_close_matches(str(op), OPERATORS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _Err(oloc, f"unknown operator {op!r}{hint}; operators: {', '.join(OPERATORS)}")
        out.append(_check_operand(fname, op, value, oloc, hasher))
    return out


def _check_operand(fname: str, op: str, value: Any, loc: tuple[Any, ...], hasher: KeyHasher | None) -> Condition:
    if fname == "api_key":
        if op not in ("eq", "in"):
            raise _Err(loc, "api_key matches full keys with equality or `in` only (it is compared by fingerprint)")
        keys = value if op == "in" else [value]
        if not isinstance(keys, list) or not all(isinstance(k, str) and looks_like_key(strip_scheme(k)) for k in keys):
            raise _Err(loc, "api_key takes full OpenAI keys (sk-…); to match the stored form use api_key_id")
        return Leaf("api_key_fp", "in", _fingerprints(keys, loc, hasher))
    if fname == "api_key_id" and op in ("eq", "in"):
        # a full key where the display id was meant: match it by fingerprint, never keep it
        values = value if isinstance(value, list) else [value]
        full = [v for v in values if isinstance(v, str) and looks_like_key(strip_scheme(v))]
        if full:
            by_fp = Leaf("api_key_fp", "in", _fingerprints(full, loc, hasher))
            rest = [v for v in values if v not in full]
            return Combo("any", (by_fp, _check_operand(fname, "in", rest, loc, hasher))) if rest else by_fp
    value = _scrub_operand(value)
    numeric = fname in NUMERIC_COLUMNS
    if op in ("gt", "gte", "lt", "lte"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Err(loc, f"{op} takes a number")
        return Leaf(fname, op, value)
    if op == "exists":
        if not isinstance(value, bool):
            raise _Err(loc, "exists takes true or false")
        return Leaf(fname, op, value)
    if op == "in":
        if not isinstance(value, list) or not value or not all(isinstance(v, str | int | float | bool) for v in value):
            raise _Err(loc, "in takes a non-empty list of values")
        return Leaf(fname, op, tuple(value))
    if op == "eq":
        if not isinstance(value, str | int | float | bool):
            raise _Err(loc, "eq takes a single value")
        return Leaf(fname, op, value)
    if not isinstance(value, str) and not (op == "cidr" and isinstance(value, list)):
        raise _Err(loc, f"{op} takes a string")
    if op == "regex":
        if len(value) > MAX_REGEX_CHARS:
            raise _Err(loc, f"regex is over {MAX_REGEX_CHARS} characters")
        quiet = re2.Options()
        quiet.log_errors = False  # else RE2 writes its own log lines to stderr before our message
        try:
            compiled = re2.compile(value, quiet)
        except re2.error as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            raise _Err(loc, f"invalid RE2 regex: {reason}") from None
        return Leaf(fname, op, (value, dict(compiled.groupindex)))
    if op == "cidr":
        import ipaddress

        cidrs = value if isinstance(value, list) else [value]
        try:
            nets = tuple(str(ipaddress.ip_network(c, strict=False)) for c in cidrs)
        except ValueError as exc:
            raise _Err(loc, f"invalid CIDR: {exc}") from None
        return Leaf(fname, op, nets)
    if numeric and op in ("glob", "prefix", "suffix"):
        raise _Err(loc, f"{op} needs a text field; {fname} is numeric (use gt/gte/lt/lte or eq)")
    return Leaf(fname, op, value)


def _fingerprints(keys: list[str], loc: tuple[Any, ...], hasher: KeyHasher | None) -> tuple[str, ...]:
    if hasher is None:
        raise _Err(loc, "a rule naming a full key needs the warehouse (its secret) to fingerprint it")
    return tuple(hasher.fingerprint(strip_scheme(k)) for k in keys)


def _scrub_operand(value: Any) -> Any:
    """A key inside any other matcher is reduced to its display id: that is the form stored calls hold."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, list):
        return [scrub_text(v) if isinstance(v, str) else v for v in value]
    return value


def _compile_when(when: Any, loc: tuple[Any, ...], dims: list[str], hasher: KeyHasher | None) -> Condition | None:
    if when is None or when == {}:
        return None
    if not isinstance(when, dict):
        raise _Err(loc, "`when` is a mapping of field -> matcher (or all/any/not)")
    parts: list[Condition] = []
    for key, spec in when.items():
        kloc = (*loc, key)
        if key in ("all", "any"):
            if not isinstance(spec, list) or not spec:
                raise _Err(kloc, f"{key} takes a non-empty list of conditions")
            subs = []
            for i, s in enumerate(spec):
                c = _compile_when(s, (*kloc, i), dims, hasher)
                if c is None:
                    raise _Err((*kloc, i), "empty condition")
                subs.append(c)
            parts.append(Combo(key, tuple(subs)))
        elif key == "not":
            c = _compile_when(spec, kloc, dims, hasher)
            if c is None:
                raise _Err(kloc, "not takes a condition")
            parts.append(Combo("not", (c,)))
        else:
            parts.extend(_compile_leaf(str(key), spec, kloc, dims, hasher))
    return parts[0] if len(parts) == 1 else Combo("all", tuple(parts))


_TEMPLATE = re.compile(r"\{([^{}]+)\}")


def _regex_captures(cond: Condition | None) -> dict[str, tuple[str, str, int]]:
    found: dict[str, tuple[str, str, int]] = {}
    if isinstance(cond, Leaf) and cond.op == "regex":
        pattern, groups = cond.value
        for name, idx in groups.items():
            found[name] = (cond.field, pattern, idx)
    elif isinstance(cond, Combo) and cond.kind == "all":
        for p in cond.parts:
            found.update(_regex_captures(p))
    return found


def _compile_template(value: str, captures: dict[str, Any], loc: tuple[Any, ...], dims: list[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    for m in _TEMPLATE.finditer(value):
        if m.start() > pos:
            out.append(("lit", value[pos : m.start()]))
        name = m.group(1).strip()
        if name in captures:
            out.append(("capture", name))
        elif name in set(CALL_COLUMNS) | set(dims) or name.startswith("metadata."):
            if name in ("metadata", "api_key", "api_key_fp"):
                raise _Err(loc, f"template field {name!r} cannot be copied into a dimension")
            out.append(("field", name))
        else:
            raise _Err(loc, f"template {{{name}}} names neither a field nor a named capture of this rule's regex")
        pos = m.end()
    if pos < len(value):
        out.append(("lit", value[pos:]))
    return out or [("lit", "")]


def compile_rules(data: RuleFile, hasher: KeyHasher | None, root: Any = None, path: Path | None = None) -> RuleSet:
    dims: list[str] = []
    ordered = [d for d in STANDARD_DIMENSIONS] + [d for d in data.rules if d not in STANDARD_DIMENSIONS]
    compiled: dict[str, list[CompiledRule]] = {}
    errors: list[str] = []
    for dim in ordered:
        rules = data.rules.get(dim, [])
        if dim not in STANDARD_DIMENSIONS and (not _DIM_NAME.match(dim) or dim in _RESERVED):
            errors.append(_fmt(path, root, ("rules", dim),
                               f"dimension name {dim!r} must be lower_snake_case and not a call column"))
        seen: set[str] = set()
        out: list[CompiledRule] = []
        for i, rule in enumerate(rules):
            loc = ("rules", dim, i)
            try:
                if rule.id in seen:
                    raise _Err((*loc, "id"), f"duplicate rule id {rule.id!r} in {dim}")
                seen.add(rule.id)
                cond = _compile_when(rule.when, (*loc, "when"), dims, hasher)
                captures = _regex_captures(cond)
                template = _compile_template(scrub_text(str(rule.value)), captures, (*loc, "value"), dims)
                out.append(CompiledRule(scrub_text(rule.id), cond, template, captures, line_of(root, loc)))
            except _Err as e:
                errors.append(_fmt(path, root, e.loc, e.msg))
        compiled[dim] = out
        dims.append(dim)
    for dim in data.defaults:
        if dim not in compiled:
            errors.append(_fmt(path, root, ("defaults", dim),
                               f"default for {dim!r}, which has no rules and is not a standard dimension"))
    scoped: list[tuple[str, list[Budget | Allowlist]]] = [("budgets", list(data.budgets)), ("allowlists", list(data.allowlists))]
    for kind, items in scoped:
        for i, item in enumerate(items):
            for dim in item.scope:
                if dim not in compiled and dim not in ("model", "endpoint", "api_key_id"):
                    errors.append(_fmt(path, root, (kind, i, "scope", dim), f"scope names {dim!r}, which is not a dimension"))
    for i, a in enumerate(data.allowlists):
        import ipaddress

        for c in a.cidrs:
            try:
                ipaddress.ip_network(c, strict=False)
            except ValueError as exc:
                errors.append(_fmt(path, root, ("allowlists", i, "cidrs"), f"invalid CIDR: {exc}"))
    if errors:
        raise ConfigError("\n".join(errors))
    defaults = {k: scrub_text(v) for k, v in data.defaults.items()}
    scoped_items: list[Budget | Allowlist] = [*data.budgets, *data.allowlists]
    for item in scoped_items:
        item.id = scrub_text(item.id)
        item.scope = {k: scrub_text(v) if isinstance(v, str) else v for k, v in item.scope.items()}
    # persisted with every attributed batch: keys appear in it only as fingerprints or display ids
    canonical = scrub_text(json.dumps(
        {"rules": {d: [_canon(r) for r in rs] for d, rs in compiled.items()}, "defaults": defaults},
        sort_keys=True, default=str,
    ))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return RuleSet(compiled, defaults, data.budgets, data.allowlists, digest, canonical,
                   str(path) if path else None, sum(len(v) for v in compiled.values()))


def _canon(r: CompiledRule) -> dict[str, Any]:
    return {"id": r.id, "when": repr(r.condition), "value": r.template}


def _fmt(path: Path | None, root: Any, loc: tuple[Any, ...], msg: str) -> str:
    line = line_of(root, loc) if root is not None else None
    where = f"{path}:{line}" if path and line else str(path or "<rules>")
    return f"{where}: {'.'.join(str(p) for p in loc)}: {msg}"


def load_rules(path: str | Path | None, hasher: KeyHasher | None = None) -> RuleSet:
    """Load and compile a rule file; `None` gives the empty ruleset (all defaults)."""
    if path is None:
        return compile_rules(RuleFile(), hasher)
    p = Path(path)
    model, root = load_yaml_model(p, RuleFile, "rule file", "a rule file is a YAML mapping with version, rules, "
                                  "defaults, budgets, allowlists", empty_ok=True)
    return compile_rules(model, hasher, root, p)
