"""`export focus`: usage as a FinOps FOCUS 1.2 cost and usage dataset (CSV or Parquet).

Spec: FOCUS 1.2 (FinOps Foundation, FOCUS_Spec tag v1.2, specification/columns/). One row per
UTC day x model x meter (input, cached input, output, audio tokens) x key x feature x end user
x project, so FinOps tools can allocate by the same dimensions tokentrail attributes. The
provider publishes no discounts in the logs, so List, Contracted, Effective and Billed cost are
the same list-price cost (batch and flex prices are already in it). Tokens are the consumed
quantity; prices are per 1M tokens, so PricingQuantity is tokens / 1,000,000 in `1M Tokens`.
Attribution goes to `Tags` (JSON) and to `x_` columns; a call without a price has cost 0 and
`x_PriceStatus = unpriced` (FOCUS costs may not be null). Types: Decimal -> decimal(38,12),
Date/Time -> UTC timestamps (ISO 8601 `…Z` in CSV), JSON -> a JSON string.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .output import exact_cost
from .query import WarehouseRef, connect
from .reports import date_params

FOCUS_VERSION = "1.2"
DECIMAL = pa.decimal128(38, 12)
TIMESTAMP = pa.timestamp("us", tz="UTC")

# (meter, SkuMeter, tokens expression, cost column)
METERS = (
    ("input", "Input Tokens",
     "greatest(coalesce(input_tokens, 0) - coalesce(cached_input_tokens, 0) - coalesce(audio_input_tokens, 0), 0)",
     "input_cost_usd"),
    ("cached_input", "Cached Input Tokens", "coalesce(cached_input_tokens, 0)", "cached_input_cost_usd"),
    ("output", "Output Tokens", "greatest(coalesce(output_tokens, 0) - coalesce(audio_output_tokens, 0), 0)",
     "output_cost_usd"),
    ("audio", "Audio Tokens", "coalesce(audio_input_tokens, 0) + coalesce(audio_output_tokens, 0)", "audio_cost_usd"),
)

# FOCUS 1.2 columns written, with their spec data type; then tokentrail's own x_ columns.
FOCUS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("BilledCost", "Decimal"), ("BillingAccountId", "String"), ("BillingAccountName", "String"),
    ("BillingAccountType", "String"), ("BillingCurrency", "String"), ("BillingPeriodEnd", "Date/Time"),
    ("BillingPeriodStart", "Date/Time"), ("ChargeCategory", "String"), ("ChargeClass", "String"),
    ("ChargeDescription", "String"), ("ChargeFrequency", "String"), ("ChargePeriodEnd", "Date/Time"),
    ("ChargePeriodStart", "Date/Time"), ("ConsumedQuantity", "Decimal"), ("ConsumedUnit", "String"),
    ("ContractedCost", "Decimal"), ("EffectiveCost", "Decimal"), ("InvoiceIssuerName", "String"),
    ("ListCost", "Decimal"), ("PricingCategory", "String"), ("PricingQuantity", "Decimal"), ("PricingUnit", "String"),
    ("ProviderName", "String"), ("PublisherName", "String"), ("ResourceId", "String"), ("ResourceName", "String"),
    ("ResourceType", "String"), ("ServiceCategory", "String"), ("ServiceName", "String"),
    ("ServiceSubcategory", "String"), ("SkuId", "String"), ("SkuMeter", "String"), ("SkuPriceId", "String"),
    ("SubAccountId", "String"), ("SubAccountName", "String"), ("SubAccountType", "String"), ("Tags", "JSON"),
)
X_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("x_Model", pa.string()), ("x_Meter", pa.string()), ("x_KeyName", pa.string()), ("x_Feature", pa.string()),
    ("x_EndUser", pa.string()), ("x_Team", pa.string()), ("x_Requests", pa.int64()),
    ("x_EstimatedTokens", pa.int64()), ("x_PriceSource", pa.string()), ("x_PriceStatus", pa.string()),
    ("x_RulesetHash", pa.string()), ("x_FocusVersion", pa.string()),
)
ARROW_TYPES = {"Decimal": DECIMAL, "Date/Time": TIMESTAMP, "String": pa.string(), "JSON": pa.string()}
SCHEMA = pa.schema([pa.field(n, ARROW_TYPES[t]) for n, t in FOCUS_COLUMNS] + [pa.field(n, t) for n, t in X_COLUMNS])
TAG_DIMENSIONS = ("key_name", "team", "feature", "end_user")


def _query(since: date | None, until: date | None, columns: set[str]) -> tuple[str, list[Any]]:
    where, params = date_params(since, until)
    team = '"team"' if "team" in columns else "NULL"
    parts = []
    for meter, sku_meter, qty, cost in METERS:
        parts.append(f"""
            SELECT CAST(ts AS DATE) AS day, model, '{meter}' AS meter, '{sku_meter}' AS sku_meter,
                   org_id, project_id, api_key_id, key_name, {team} AS team, feature, end_user,
                   service_tier, coalesce(batch, false) AS batch, price_source, ruleset_hash,
                   {qty} AS qty, {cost} AS cost,
                   CASE WHEN token_source <> 'reported' THEN {qty} ELSE 0 END AS est_qty
            FROM usage WHERE {where}""")
    union = " UNION ALL ".join(parts)
    sql = f"""
        SELECT day, model, meter, sku_meter, org_id, project_id, api_key_id, key_name, team, feature, end_user,
               service_tier, batch, price_source, ruleset_hash,
               sum(qty) AS qty, CAST(sum(cost) AS DECIMAL(38, 12)) AS cost, count(*) AS requests,
               count(*) FILTER (WHERE cost IS NULL) AS unpriced, sum(est_qty) AS est_qty
        FROM ({union}) GROUP BY ALL HAVING sum(qty) > 0 OR coalesce(sum(cost), 0) <> 0
        ORDER BY day, model, meter, key_name, feature, end_user, project_id, api_key_id, service_tier, batch,
                 price_source, ruleset_hash, org_id, team
    """
    return sql, params * len(METERS)


def _month(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, 1, tzinfo=UTC)
    end = datetime(day.year + (day.month == 12), day.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def focus_rows(root: WarehouseRef, since: date | None = None, until: date | None = None) -> pa.Table:
    """The FOCUS dataset as an Arrow table of `SCHEMA`."""
    con = connect(root)
    columns = {r[0] for r in con.sql("DESCRIBE usage").fetchall()}
    sql, params = _query(since, until, columns)
    rows = con.sql(sql, params=params).fetchall()
    out: dict[str, list[Any]] = {f.name: [] for f in SCHEMA}
    million = Decimal(1_000_000)
    for (day, model, meter, sku_meter, org, project, key_id, key_name, team, feature, end_user, tier, batch,
         price_source, ruleset, qty, cost, requests, unpriced, est_qty) in rows:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        bp_start, bp_end = _month(day)
        money = cost if cost is not None else Decimal(0)
        tags = {k: v for k, v in zip(TAG_DIMENSIONS, (key_name, team, feature, end_user), strict=True) if v is not None}
        sku = f"{model}/{meter}"
        price_id = "/".join([sku, tier or "default", "batch" if batch else "standard"])
        values: dict[str, Any] = {
            "BilledCost": money, "BillingAccountId": org or "openai-organization", "BillingAccountName": None,
            "BillingAccountType": "Organization", "BillingCurrency": "USD", "BillingPeriodEnd": bp_end,
            "BillingPeriodStart": bp_start, "ChargeCategory": "Usage", "ChargeClass": None,
            "ChargeDescription": f"{model} {sku_meter.lower()}" + (" (batch)" if batch else ""),
            "ChargeFrequency": "Usage-Based", "ChargePeriodEnd": start + timedelta(days=1),
            "ChargePeriodStart": start, "ConsumedQuantity": Decimal(int(qty)), "ConsumedUnit": "Tokens",
            "ContractedCost": money, "EffectiveCost": money, "InvoiceIssuerName": "OpenAI", "ListCost": money,
            "PricingCategory": "Standard", "PricingQuantity": Decimal(int(qty)) / million, "PricingUnit": "1M Tokens",
            "ProviderName": "OpenAI", "PublisherName": "OpenAI", "ResourceId": key_id, "ResourceName": key_name,
            "ResourceType": "API Key" if key_id else None, "ServiceCategory": "AI and Machine Learning",
            "ServiceName": "OpenAI API", "ServiceSubcategory": "Generative AI", "SkuId": sku, "SkuMeter": sku_meter,
            "SkuPriceId": price_id, "SubAccountId": project, "SubAccountName": None,
            "SubAccountType": "Project" if project else None, "Tags": json.dumps(tags, sort_keys=True, ensure_ascii=False),
            "x_Model": model, "x_Meter": meter, "x_KeyName": key_name, "x_Feature": feature, "x_EndUser": end_user,
            "x_Team": team, "x_Requests": int(requests), "x_EstimatedTokens": int(est_qty or 0),
            "x_PriceSource": price_source, "x_PriceStatus": "unpriced" if unpriced else "priced",
            "x_RulesetHash": ruleset, "x_FocusVersion": FOCUS_VERSION,
        }
        for k, v in values.items():
            out[k].append(v)
    return pa.table(out, schema=SCHEMA)


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(v, Decimal):
        return exact_cost(v)
    return str(v)


def export_focus(root: WarehouseRef, output: Path, fmt: str, since: date | None = None, until: date | None = None) -> int:
    """Write the dataset; returns the number of rows. The file appears whole or not at all."""
    table = focus_rows(root, since, until)
    tmp = output.with_name(f".{output.name}.tmp")
    if fmt == "parquet":
        pq.write_table(table, tmp)
    else:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(table.column_names)
            for row in table.to_pylist():
                w.writerow([_csv_value(v) for v in row.values()])
    tmp.replace(output)
    return int(table.num_rows)
