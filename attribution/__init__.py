"""tokentrail attribution: rules, prices, re-attribution, reports, the library API and the CLI.

The API (`attribution.api`) is re-exported here: `from attribution import ingest, report`. The
names resolve on first use, so importing the package (as the CLI does) loads nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ingest.errors import (
    BadArgument,
    ConfigError,
    ConflictError,
    DeliveryError,
    FormatError,
    MissingDataFile,
    NoSuchVersion,
    QueryError,
    ReportError,
    SecretError,
    TokentrailError,
    UnknownDimension,
    VocabularyError,
    WarehouseError,
    WarehouseNotFound,
    WarehouseWriteError,
)

if TYPE_CHECKING:
    from .api import (
        AlertSettings,
        AnomalyReport,
        AuditReport,
        Compaction,
        Detected,
        FormatInfo,
        IngestReport,
        Progress,
        SuggestedProfile,
        TokenCount,
        anomalies,
        audit_ips,
        budgets,
        check_rules,
        compact,
        count_tokens,
        detect_formats,
        explain_call,
        export_focus,
        html_report,
        ingest,
        list_formats,
        make_watcher,
        open_store,
        parse_as_of,
        read_only_rules,
        reattribute,
        reconcile,
        report,
        rules_coverage,
        rules_sql,
        run_watcher,
        sql,
        suggest_profile,
        try_profile,
        watch,
    )

__all__ = [
    # the library API (attribution.api), one function per command and the results they return
    "AlertSettings", "AnomalyReport", "AuditReport", "Compaction", "Detected", "FormatInfo", "IngestReport", "Progress",
    "SuggestedProfile", "TokenCount", "anomalies", "audit_ips", "budgets", "check_rules", "compact", "count_tokens",
    "detect_formats", "explain_call", "export_focus", "html_report", "ingest", "list_formats",
    "make_watcher", "open_store", "parse_as_of", "read_only_rules", "reattribute", "reconcile", "report",
    "rules_coverage", "rules_sql", "run_watcher", "sql", "suggest_profile", "try_profile", "watch",
    # the errors (ingest.errors)
    "BadArgument", "ConfigError", "ConflictError", "DeliveryError", "FormatError", "MissingDataFile", "NoSuchVersion",
    "QueryError", "ReportError", "SecretError", "TokentrailError", "UnknownDimension", "VocabularyError", "WarehouseError",
    "WarehouseNotFound", "WarehouseWriteError",
]


def __getattr__(name: str) -> Any:
    """The API names, imported on first use (PEP 562)."""
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'attribution' has no attribute {name!r}")
