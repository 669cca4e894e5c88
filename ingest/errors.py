"""Every user-facing error, in the lowest layer so any module can raise it.

Library code raises these and never prints or exits; the CLI turns them into `Error: …` and
exits with the class's `exit_code` (as click's own exceptions do). `attribution` re-exports them.
"""

from __future__ import annotations


class TokentrailError(Exception):
    """Base class: a failure the user can act on; the message says how."""

    exit_code = 1


class BadArgument(TokentrailError):
    """A value the caller passed (on the command line, a flag's value) that cannot be used whatever the data:
    `--as-of` that is neither a version nor a timestamp, `--by` naming no column or dimension, `--metrics`
    without a port, a webhook URL that is not http(s). Exit 2, like click's own bad-flag errors."""

    exit_code = 2


class ConfigError(TokentrailError):
    """A rule file, profile or price file is invalid (message names file, line and field)."""


class VocabularyError(TokentrailError):
    """A tokenizer vocabulary is missing or corrupted."""


class WarehouseError(TokentrailError):
    """The warehouse is unusable: locked, unwritable, or its state is inconsistent."""


class NoSuchVersion(WarehouseError):
    """`--as-of` names a version or time at which a table did not exist (yet)."""


class MissingDataFile(WarehouseError):
    """A data file the table's current snapshot lists cannot be read (deleted or damaged outside tokentrail)."""


class WarehouseNotFound(WarehouseError):
    """A read command was pointed at a place that holds no warehouse."""


class WarehouseWriteError(WarehouseError):
    """Writing to the warehouse failed (disk full, quota, permissions); nothing was committed."""


class ConflictError(WarehouseError):
    """A concurrent writer kept winning; the command can simply be run again."""


class SecretError(WarehouseError):
    """The per-warehouse HMAC secret is missing, unreadable or has changed."""


class FormatError(TokentrailError):
    """A format name or a profile is unknown or unusable."""


class QueryError(TokentrailError):
    """A user query failed or was refused (`sql` only reads)."""


class ReportError(TokentrailError):
    """A report asked for something the warehouse cannot answer (an unknown dimension, a bad range)."""


class UnknownDimension(BadArgument, ReportError):
    """`--by` names no column or dimension of the tables (exit 2: the flag's value is wrong)."""


class DeliveryError(TokentrailError):
    """An alert sink could not take an alert (after its retries)."""


class RecordError(ValueError):
    """One log record could not be turned into calls; the reason goes to quarantine (never shown as an error)."""


__all__ = ["ConfigError", "ConflictError", "DeliveryError", "FormatError", "QueryError", "RecordError",
           "ReportError", "SecretError", "TokentrailError", "VocabularyError", "WarehouseError", "WarehouseNotFound",
           "WarehouseWriteError"]
