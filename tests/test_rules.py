"""Rule files: every matcher kind, precedence, defaults, templates, and invalid files."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import FIXTURE_KEY

from attribution.engine import DEFAULT_RULE, Engine
from attribution.rules import load_rules
from ingest.errors import ConfigError
from ingest.keys import KeyHasher
from ingest.schema import Call, calls_to_table

HASHER = KeyHasher(b"k" * 32)
TS = 1_741_000_000_000_000


def calls(*specs: dict[str, Any]) -> pa.Table:
    out = []
    for i, s in enumerate(specs):
        c = Call(call_id=f"c{i}", ts=TS, source_file="f", source_offset=i, source_format="openai", model="gpt-4o-mini",
                 input_tokens=100, output_tokens=10, total_tokens=110, token_source="reported", ingested_at=TS)
        for k, v in s.items():
            setattr(c, k, v)
        out.append(c)
    return calls_to_table(out)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "rules.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def attribute(tmp_path: Path, rules: str, *specs: dict[str, Any]) -> list[dict[str, Any]]:
    rs = load_rules(write(tmp_path, rules), HASHER)
    return Engine(rs).apply(calls(*specs)).sort_by("call_id").to_pylist()


@pytest.mark.parametrize(("matcher", "row", "hit"), [
    ({"route": "/a"}, {"route": "/a"}, True),
    ({"route": {"eq": "/a"}}, {"route": "/b"}, False),
    ({"route": {"in": ["/a", "/b"]}}, {"route": "/b"}, True),
    ({"route": {"glob": "/essays/*"}}, {"route": "/essays/42/review"}, True),
    ({"route": {"glob": "/essays/*"}}, {"route": "/chat"}, False),
    ({"route": {"regex": "^/v[0-9]+/"}}, {"route": "/v2/x"}, True),
    ({"route": {"prefix": "/adm"}}, {"route": "/admin"}, True),
    ({"api_key_id": {"suffix": "FZND"}}, {"api_key_id": "sk-…FZND"}, True),
    ({"client_ip": {"cidr": "10.0.0.0/8"}}, {"client_ip": "10.20.30.40"}, True),
    ({"client_ip": {"cidr": "10.0.0.0/8"}}, {"client_ip": "11.0.0.1"}, False),
    ({"client_ip": {"cidr": "2001:db8::/32"}}, {"client_ip": "2001:db8:1::7"}, True),
    ({"client_ip": {"cidr": "2001:db8::/32"}}, {"client_ip": "2001:db9::1"}, False),
    ({"client_ip": {"cidr": ["10.0.0.0/8", "fd00::/8"]}}, {"client_ip": "fd12::1"}, True),
    ({"client_ip": {"cidr": "10.0.0.0/8"}}, {"client_ip": "not-an-ip"}, False),
    ({"user": {"exists": True}}, {"user": "u1"}, True),
    ({"user": {"exists": True}}, {"user": ""}, False),
    ({"user": {"exists": False}}, {}, True),
    ({"input_tokens": {"gt": 99}}, {}, True),
    ({"input_tokens": {"gte": 101}}, {}, False),
    ({"input_tokens": {"lt": 101, "gte": 100}}, {}, True),
    ({"output_tokens": {"lte": 9}}, {}, False),
    ({"stream": True}, {"stream": True}, True),
    ({"status_code": 429}, {"status_code": 429}, True),
    ({"metadata.x-feature": "essays"}, {"metadata": {"x-feature": "essays"}}, True),
    ({"metadata.x-feature": {"exists": True}}, {"metadata": {"other": "1"}}, False),
    ({"system_prompt_head": {"regex": "admissions counselor"}}, {"system_prompt_head": "You are an admissions counselor."}, True),
    ({"system_prompt_fp": "abc123"}, {"system_prompt_fp": "abc123"}, True),
    ({"all": [{"route": "/a"}, {"user": "u"}]}, {"route": "/a", "user": "u"}, True),
    ({"all": [{"route": "/a"}, {"user": "u"}]}, {"route": "/a", "user": "v"}, False),
    ({"any": [{"route": "/a"}, {"user": "u"}]}, {"route": "/z", "user": "u"}, True),
    ({"not": {"route": "/a"}}, {"route": "/b"}, True),
    ({"not": {"route": "/a"}}, {}, True),  # a missing field does not equal "/a"
    ({"route": "/a", "user": "u"}, {"route": "/a"}, False),  # several fields: all must hold
])
def test_every_matcher_kind(tmp_path: Path, matcher: dict[str, Any], row: dict[str, Any], hit: bool) -> None:
    import yaml

    rules = "version: 1\nrules:\n  feature:\n    - id: r\n      when: " + yaml.safe_dump(matcher, default_flow_style=True).strip() + "\n      value: hit\n"
    (out,) = attribute(tmp_path, rules, row)
    assert (out["feature"] == "hit") is hit
    assert out["feature_rule"] == ("r" if hit else DEFAULT_RULE)


def test_first_match_wins_defaults_and_rule_ids(tmp_path: Path) -> None:
    rules = """
        version: 1
        rules:
          feature:
            - {id: specific, when: {route: /essays/special}, value: special}
            - {id: general, when: {route: {prefix: /essays}}, value: essays}
        defaults: {feature: other}
    """
    out = attribute(tmp_path, rules, {"route": "/essays/special"}, {"route": "/essays/x"}, {"route": "/chat"})
    assert [(r["feature"], r["feature_rule"]) for r in out] == [
        ("special", "specific"), ("essays", "general"), ("other", DEFAULT_RULE)]
    assert all(r["key_name"] == "unattributed" and r["ruleset_hash"] for r in out)


def test_templates_copy_fields_metadata_and_regex_captures(tmp_path: Path) -> None:
    rules = r"""
        version: 1
        rules:
          end_user:
            - {id: u, when: {user: {exists: true}}, value: "user:{user}"}
          feature:
            - {id: tag, when: {"metadata.x-feature": {exists: true}}, value: "{metadata.x-feature}"}
          area:
            - {id: area, when: {route: {regex: "^/(?P<area>[a-z]+)/(?P<id>[0-9]+)"}}, value: "{area}-{id}"}
    """
    (r,) = attribute(tmp_path, rules, {"user": "stu-1", "metadata": {"x-feature": "essays"}, "route": "/essays/42"})
    assert (r["end_user"], r["feature"], r["area"]) == ("user:stu-1", "essays", "essays-42")


def test_dimensions_can_use_earlier_dimensions(tmp_path: Path) -> None:
    rules = """
        version: 1
        rules:
          key_name:
            - {id: k, when: {api_key_id: {suffix: AAAA}}, value: alpha}
          team:
            - {id: t, when: {key_name: alpha}, value: growth}
    """
    (r,) = attribute(tmp_path, rules, {"api_key_id": "sk-…AAAA"})
    assert (r["key_name"], r["team"]) == ("alpha", "growth")


def test_a_full_key_in_a_rule_is_matched_by_fingerprint_and_not_kept(tmp_path: Path) -> None:
    rules = f"""
        version: 1
        rules:
          key_name:
            - {{id: full, when: {{api_key: "{FIXTURE_KEY}"}}, value: team-gpt}}
    """
    rs = load_rules(write(tmp_path, rules), HASHER)
    assert FIXTURE_KEY not in rs.canonical
    fp = HASHER.fingerprint(FIXTURE_KEY)
    out = Engine(rs).apply(calls({"api_key_fp": fp}, {"api_key_fp": "0" * 64})).sort_by("call_id").to_pylist()
    assert [r["key_name"] for r in out] == ["team-gpt", "unattributed"]


@pytest.mark.parametrize(("text", "message"), [
    ("version: 1\nrules:\n  feature:\n    - id: a\n      when: {rout: /x}\n      value: v\n",
     "rules.yaml:5: rules.feature.0.when.rout: unknown field 'rout' (did you mean 'route'?)"),
    ("version: 1\nrules:\n  feature:\n    - id: a\n      when: {route: {regx: x}}\n      value: v\n",
     "rules.yaml:5: rules.feature.0.when.route.regx: unknown operator 'regx' (did you mean 'regex'?)"),
    ("version: 1\nrules:\n  feature:\n    - id: a\n      when: {route: {regex: '(?<=x)y'}}\n      value: v\n",
     "rules.yaml:5: rules.feature.0.when.route.regex: invalid RE2 regex"),
    ("version: 1\nrules:\n  feature:\n    - id: a\n      when: {client_ip: {cidr: 10.0.0.0/33}}\n      value: v\n",
     "rules.yaml:5: rules.feature.0.when.client_ip.cidr: invalid CIDR"),
    ("version: 1\nrules:\n  feature:\n    - id: a\n      wen: {route: /x}\n      value: v\n",
     "rules.yaml:5: rules.feature.0.wen: unknown field (check the spelling; see the rule-file reference in README.md"),
    ("version: 1\nrules:\n  feature:\n    - id: a\n      when: {route: /x}\n",
     "rules.yaml:4: rules.feature.0.value: Field required"),
    ("version: 2\n", "rules.yaml:1: version: Input should be 1"),
    ("version: 1\nrules:\n  feature:\n    - id: a\n      value: '{nope}'\n",
     "rules.yaml:5: rules.feature.0.value: template {nope} names neither a field nor a named capture"),
    ("version: 1\nrules:\n  key_name:\n    - id: a\n      when: {feature: x}\n      value: v\n",
     "unknown field 'feature' (dimensions can only use dimensions defined before them)"),
    ("version: 1\nrules:\n  feature:\n    - id: a\n      when: {input_tokens: {gt: many}}\n      value: v\n",
     "rules.yaml:5: rules.feature.0.when.input_tokens.gt: gt takes a number"),
    ("version: 1\nrules:\n  feature:\n    - {id: a, value: v}\n    - {id: a, value: w}\n",
     "rules.yaml:5: rules.feature.1.id: duplicate rule id 'a'"),
    ("version: 1\nrules: {feature: [{id: a, value: v}]}\nbudgets:\n  - {id: b, scope: {kee_name: x}, limit_usd: 5}\n",
     "rules.yaml:4: budgets.0.scope.kee_name: scope names 'kee_name', which is not a dimension"),
    ("version: 1\nrules:\n  feature: [\n", "rules.yaml:4: invalid YAML"),
    ("!!python/object/apply:os.system ['echo pwned']\n", "invalid YAML"),
    ("version: 1\nrules:\n  key_name:\n    - id: a\n      when: {api_key: sk-short}\n      value: v\n",
     "api_key takes full OpenAI keys"),
    # checked at load, not when a budget is first evaluated (where the typo stopped every alert, unsaid)
    ("version: 1\nbudgets:\n  - id: b\n    limit_usd: 10\n    timezone: America/New_Yrok\n",
     "rules.yaml:5: budgets.0.timezone: unknown time zone 'America/New_Yrok' (use an IANA name like Europe/Berlin)"),
    ("version: 1\nbudgets:\n  - {id: b, limit_usd: 10, warn_at: [2]}\n",
     "rules.yaml:3: budgets.0.warn_at: warn_at holds fractions"),
])
def test_invalid_rule_files_name_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_rules(write(tmp_path, text), HASHER)
    assert message in str(err.value).replace(str(tmp_path) + "/", "")


def test_ruleset_hash_changes_with_rules_and_not_with_formatting(tmp_path: Path) -> None:
    a = load_rules(write(tmp_path, "version: 1\nrules:\n  feature:\n    - {id: a, when: {route: /x}, value: v}\n"), HASHER)
    b = load_rules(write(tmp_path, "version: 1\nrules:\n  feature:\n    - id: a\n      when:\n        route: /x\n      value: v\n"), HASHER)
    c = load_rules(write(tmp_path, "version: 1\nrules:\n  feature:\n    - {id: a, when: {route: /y}, value: v}\n"), HASHER)
    assert a.hash == b.hash != c.hash


def test_sample_rules_exercise_every_matcher_kind() -> None:
    """Walks the compiled conditions (not the file's text, where `in:` hides inside `contains:`, `eq:` inside
    `neq:`): every operator, every combinator, api_key, metadata and a named capture are really used."""
    from conftest import REPO

    from attribution.rules import OPERATORS, Combo, Condition, Leaf

    rs = load_rules(REPO / "sample_logs" / "rules.yaml", HASHER)
    assert rs.rule_count >= 15
    ops: set[str] = set()
    kinds: set[str] = set()
    fields: set[str] = set()

    def walk(c: Condition | None) -> None:
        if isinstance(c, Leaf):
            ops.add(c.op)
            fields.add(c.field)
        elif isinstance(c, Combo):
            kinds.add(c.kind)
            for part in c.parts:
                walk(part)

    rules = [r for items in rs.dimensions.values() for r in items]
    for r in rules:
        walk(r.condition)
    assert ops == set(OPERATORS), set(OPERATORS) - ops
    assert kinds == {"all", "any", "not"}
    assert "api_key_fp" in fields and "system_prompt_head" in fields  # `api_key:` compiles to its fingerprint
    assert any(f.startswith("metadata.") for f in fields)
    assert any(r.captures for r in rules)  # a `(?P<name>…)` capture used in a value template


