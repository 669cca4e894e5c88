"""Typed exceptions. Library code raises these; only the CLI prints and exits."""

from __future__ import annotations


class TokentrailError(Exception):
    """Base class: a failure the user can act on; the message says how."""


class ConfigError(TokentrailError):
    """A rule file, profile or price file is invalid (message names file, line and field)."""


class VocabularyError(TokentrailError):
    """A tokenizer vocabulary is missing or corrupted."""


class WarehouseError(TokentrailError):
    """The warehouse is unusable: locked, unwritable, or its state is inconsistent."""


class WarehouseWriteError(WarehouseError):
    """Writing to the warehouse failed (disk full, quota, permissions); nothing was committed."""


class WarehouseLocked(WarehouseError):
    """Another writer holds the warehouse lock."""


class SecretError(WarehouseError):
    """The per-warehouse HMAC secret is missing, unreadable or has changed."""


class FormatError(TokentrailError):
    """A format name or a profile is unknown or unusable."""


class RecordError(ValueError):
    """One log record could not be turned into calls; the reason goes to quarantine."""
