"""API keys: reduce to a display id and a keyed fingerprint at parse time; scrub them from text.

A full key is never stored. `api_key_id` keeps only the last four characters (what the
provider's dashboard shows); `api_key_fp` is HMAC-SHA256 under a per-warehouse secret, so
the same key can be matched across files (and named in a rule file) without being kept.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from .errors import SecretError

# sk-, sk-proj-, sk-svcacct-, sk-admin-, legacy sk-None-: the body is long and URL-safe.
KEY_PATTERN = re.compile(rb"sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{16,}")
_KEY_PATTERN_STR = re.compile(KEY_PATTERN.pattern.decode())
_BEARER = re.compile(r"^\s*(?:Bearer|Basic|Token)\s+", re.IGNORECASE)

SECRET_FILE = "hmac.key"


def display_id(key: str) -> str:
    """`sk-…AbCd`: enough to recognise a key in the dashboard, useless to an attacker."""
    return "sk-…" + key[-4:] if len(key) >= 8 else "sk-…"


def strip_scheme(value: str) -> str:
    """`Bearer sk-…` -> `sk-…` (Authorization header values)."""
    return _BEARER.sub("", value).strip()


def looks_like_key(value: str) -> bool:
    return bool(_KEY_PATTERN_STR.fullmatch(value))


def scrub_bytes(data: bytes) -> bytes:
    """Replace every key-shaped run in raw bytes by its display id (for quarantine)."""
    return KEY_PATTERN.sub(lambda m: display_id(m.group(0).decode()).encode(), data)


def scrub_text(text: str) -> str:
    """Replace every key-shaped run in a message by its display id (for errors and logs)."""
    return _KEY_PATTERN_STR.sub(lambda m: display_id(m.group(0)), text)


class KeyHasher:
    """Fingerprints keys with the warehouse's secret; memoized because keys repeat."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._memo: dict[str, tuple[str, str]] = {}

    def reduce(self, raw: str) -> tuple[str, str]:
        """Return (api_key_id, api_key_fp) for a raw key or Authorization header value (already validated)."""
        hit = self._memo.get(raw)
        if hit is not None:
            return hit
        key = strip_scheme(raw)
        out = (display_id(key), self.fingerprint(key))
        if len(self._memo) < 10_000:
            self._memo[raw] = out
        return out

    def cached(self, raw: str) -> tuple[str, str] | None:
        return self._memo.get(raw)

    def fingerprint(self, key: str) -> str:
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()

    @property
    def secret_id(self) -> str:
        """A public identifier of the secret (not the secret): detects a swapped key file."""
        return hashlib.sha256(b"tokentrail-secret-id:" + self._secret).hexdigest()[:16]


def load_or_create_secret(state_dir: Path, expected_id: str | None = None) -> KeyHasher:
    """Read `_state/hmac.key`, creating it (mode 0600) on first use.

    `expected_id` is the secret id recorded when the warehouse first stored fingerprints;
    a missing or different secret then makes every stored `api_key_fp` unmatchable, so it
    is an error with instructions rather than a silent new secret.
    """
    path = state_dir / SECRET_FILE
    if not path.exists():
        if expected_id is not None:
            raise SecretError(
                f"{path} is missing, but this warehouse already holds key fingerprints made with it "
                f"(secret id {expected_id}). Restore the file from a backup; or, to start over, delete "
                f"{state_dir / 'checkpoints.sqlite'} and re-ingest (old fingerprints will no longer match)."
            )
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(32))
            os.fsync(fd)
        finally:
            os.close(fd)
    try:
        secret = path.read_bytes()
    except OSError as exc:
        raise SecretError(f"cannot read the warehouse secret {path}: {exc.strerror}") from exc
    if len(secret) < 16:
        raise SecretError(f"{path} is truncated ({len(secret)} bytes); restore it from a backup")
    hasher = KeyHasher(secret)
    if expected_id is not None and hasher.secret_id != expected_id:
        raise SecretError(
            f"{path} is not the secret this warehouse's fingerprints were made with "
            f"(expected id {expected_id}, found {hasher.secret_id}). Restore the original file."
        )
    return hasher
