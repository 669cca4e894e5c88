"""IP allowlist audit: calls whose client_ip falls outside their scope's allowed networks.

The provider has no IP allowlists; this shows, after the fact, which key was used from where.
Calls with no client_ip are not violations; they are counted separately (`unknown_ip_calls`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb

from .budgets import scope_filter
from .engine import cidr_matcher
from .query import WarehouseRef, connect
from .reports import date_params
from .rules import RuleSet


@dataclass
class AuditResult:
    violations: list[dict[str, Any]] = field(default_factory=list)
    unknown_ip_calls: int = 0
    checked_calls: int = 0


def audit_ips(root: WarehouseRef, ruleset: RuleSet, since: date | None = None, until: date | None = None,
              con: duckdb.DuckDBPyConnection | None = None) -> AuditResult:
    con = con or connect(root)
    columns = {r[0] for r in con.sql("DESCRIBE usage").fetchall()}
    result = AuditResult()
    for i, allow in enumerate(ruleset.allowlists):
        fn = f"tt_allow_{i}"
        con.create_function(fn, cidr_matcher(allow.cidrs), ["VARCHAR"], "BOOLEAN",  # type: ignore[call-overload]
                            type="arrow", null_handling="special")
        scope, scope_params = scope_filter(allow.scope, columns)
        dates, date_values = date_params(since, until)
        where, params = f"{scope} AND {dates}", [*scope_params, *date_values]
        (checked, unknown), = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE client_ip IS NULL OR client_ip = '') FROM usage WHERE {where}",
            params).fetchall()
        result.checked_calls += checked
        result.unknown_ip_calls += unknown
        rows = con.sql(f"""
            SELECT ? AS allowlist, key_name, api_key_id, client_ip, count(*) AS calls,
                   min(ts) AS first_seen, max(ts) AS last_seen, sum(cost_usd) AS cost_usd
            FROM usage
            WHERE {where} AND client_ip IS NOT NULL AND client_ip <> '' AND NOT coalesce({fn}(client_ip), false)
            GROUP BY ALL ORDER BY calls DESC, key_name, api_key_id, client_ip
        """, params=[allow.id, *params]).to_arrow_table().to_pylist()
        result.violations.extend(rows)
    return result
