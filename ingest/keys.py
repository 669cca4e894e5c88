"""API keys: reduce to a display id and a keyed fingerprint at parse time; scrub them from text.

A full key is never stored. `api_key_id` keeps only the last four characters (what the
provider's dashboard shows); `api_key_fp` is HMAC-SHA256 under a per-warehouse secret, so
the same key can be matched across files (and named in a rule file) without being kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain
from pathlib import Path

from .errors import SecretError

_SCHEME = re.compile(r"^\s*(?:Bearer|Basic|Token)\s+", re.IGNORECASE)

SECRET_FILE = "hmac.key"

# -- the one scrubber ----------------------------------------------------------------------------
#
# Every string that is stored or printed passes through `scrub_text` (or `scrub_bytes`, or the
# column-wise `scrub_columns` in ingest.schema). A cheap pre-check (`needs_scrub`: a few `in`
# tests on the lower-cased text) lets clean text through untouched; only text holding one of the
# markers pays for the regular expressions below.

# sk-, sk-proj-, sk-svcacct-, sk-admin-, legacy sk-None-: the body is long and URL-safe. Not glued to
# a word before it ("task-queue-…" is not a key) unless the prefix says which kind of key it is.
_KEY = re.compile(r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{16,}|(?<![A-Za-z0-9])sk-(?:None-)?[A-Za-z0-9_\-]{16,}")
# What is left of a key cut short by a message (`value[:40]`): the kind prefix, or a short non-word body.
_FRAGMENT = re.compile(r"(?<![A-Za-z0-9])sk-(?:(?:proj|svcacct|admin|None)-[A-Za-z0-9_\-]*|[A-Za-z0-9_\-]{4,15})"
                       r"(?![A-Za-z0-9_\-])")
# Legacy and project keys carry "T3BlbkFJ" (base64 of "OpenAI"): catches a key whose prefix was cut off.
_LEGACY = re.compile(r"(?<![A-Za-z0-9_\-])[A-Za-z0-9_\-]*T3BlbkFJ[A-Za-z0-9_\-]*")
_BEARER = re.compile(r"(?i:\bbearer)(\s+)([A-Za-z0-9._~+/\-]{16,}=*)")
_BASIC = re.compile(r"(?i:\bbasic)(\s+)([A-Za-z0-9+/_\-]{8,}={0,2})")
# a secret-named query-string or form parameter: ?api_key=…, &token=…, ;access_token=…
_QUERY = re.compile(
    r"(?i:([?&;#](?:[\w.\-]*[_\-.])?(?:api[_\-]?key|apikey|key|token|access[_\-]?token|secret|password|passwd|"
    r"auth|authorization|signature|sig)=))([^&#\s\"'<>;]+)"
)
# metadata names whose values are credentials whatever their shape (x-app-key, OpenAI-Api-Key, x-user-token)
SECRET_NAME = re.compile(
    r"(?:^|[\-_.])(?:key|api[\-_]?key|apikey|token|access[\-_]?token|secret|password|passwd|auth|authorization|"
    r"cookie|set-cookie|credentials?)$",
    re.IGNORECASE | re.MULTILINE,
)
# lower-cased markers: text holding none of them holds no key, token or credential parameter
_MARKERS = ("t3blbkfj", "bearer", "basic", "key=", "token=", "secret=", "passw", "auth=", "authorization=",
            "sig=", "signature=")
_SLUG = re.compile(r"[a-z\-_]+")  # a body of lower-case words is a name ("sk-learn-pipeline"), not a key
MIN_SECRET = 12  # a shorter value under a secret name is a placeholder ("REDACTED", "***"), kept


def display_id(key: str) -> str:
    """`sk-…AbCd`: enough to recognise a key in the dashboard, useless to an attacker."""
    return "sk-…" + key[-4:] if len(key) >= 8 else "sk-…"


def redact_secret(value: str) -> str:
    """A credential that is not an OpenAI key: keep only the last four characters."""
    return "…" + value[-4:] if len(value) >= 16 else "…"


def needs_scrub(text: str) -> bool:
    """The cheap pre-check: False means `scrub_text(text) == text` for sure.

    A few substring scans (memchr speed); lower-casing only text that holds `=` or a scheme word.
    """
    if "sk-" in text and text.count("sk-") != text.count("sk-…"):  # display ids (`sk-…AbCd`) are safe
        return True
    if "T3BlbkFJ" in text:
        return True
    if "=" in text or "earer" in text or "asic" in text or "EARER" in text or "ASIC" in text:
        low = text.lower()
        return any(m in low for m in _MARKERS)
    return False


def _key_sub(m: re.Match[str]) -> str:
    s = m.group(0)
    body = s[3:]
    if _SLUG.fullmatch(body):
        return s
    return display_id(s)


def _fragment_sub(m: re.Match[str]) -> str:
    s = m.group(0)
    if _SLUG.fullmatch(s[3:]) and not s[3:].startswith(("proj-", "svcacct-", "admin-", "None-")):
        return s
    return "sk-…"


def _bearer_sub(m: re.Match[str]) -> str:
    token = m.group(2)
    if token.startswith(("sk-…", "…")):
        return m.group(0)
    shown = display_id(token) if _KEY.fullmatch(token) else redact_secret(token)
    return m.group(0)[: m.start(2) - m.start(0)] + shown


def _basic_sub(m: re.Match[str]) -> str:
    raw = m.group(2)
    try:
        decoded = base64.b64decode(raw.replace("-", "+").replace("_", "/") + "=" * (-len(raw) % 4),
                                   validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return m.group(0)  # not base64 of text: ordinary prose ("basic authentication")
    if ":" not in decoded:
        return m.group(0)
    password = decoded.split(":", 1)[1]
    found = _KEY.search(password) or _LEGACY.search(password)
    shown = display_id(found.group(0)) if found else "[redacted]"
    return m.group(0)[: m.start(2) - m.start(0)] + shown


def _query_sub(m: re.Match[str]) -> str:
    value = m.group(2)
    if len(value) < MIN_SECRET or value.startswith(("sk-…", "…")):
        return m.group(0)
    found = _KEY.fullmatch(value)
    return m.group(1) + (display_id(value) if found else redact_secret(value))


def scrub_text(text: str) -> str:
    """Replace every API key and credential in `text` by its display id (`sk-…AbCd`).

    Keys anywhere (URLs, path segments, JSON held in a string, prose), `Bearer` tokens,
    `Basic` credentials (decoded and checked) and secret-named query parameters.
    """
    if not needs_scrub(text):
        return text
    if "sk-" in text:
        text = _FRAGMENT.sub(_fragment_sub, _KEY.sub(_key_sub, text))
    if "T3BlbkFJ" in text:
        text = _LEGACY.sub(lambda m: display_id(m.group(0)), text)
    low = text.lower()
    if "bearer" in low:
        text = _BEARER.sub(_bearer_sub, text)
    if "basic" in low:
        text = _BASIC.sub(_basic_sub, text)
    if "=" in low:
        text = _QUERY.sub(_query_sub, text)
    return text


def scrub_value(name: str, value: str) -> str:
    """A metadata value: scrubbed, and redacted whole when its name says it is a credential."""
    out = scrub_text(value)
    if SECRET_NAME.search(name) and len(out) >= MIN_SECRET and "…" not in out:
        return redact_secret(out)
    return out


def scrub_bytes(data: bytes, cut: bool = False) -> bytes:
    """`scrub_text` over raw bytes (invalid UTF-8 passes through unchanged).

    `cut`: the bytes end where a longer line was cut, so a key-shaped run at the very end
    (too short to be recognised whole) is dropped as well.
    """
    text = data.decode("utf-8", "surrogateescape")
    out = scrub_text(text)
    if cut:
        out = _CUT_TAIL.sub("", out)
    return out.encode("utf-8", "surrogateescape")


_CUT_TAIL = re.compile(r"(?:sk-[A-Za-z0-9_\-]*|(?<![A-Za-z0-9_\-])[A-Za-z0-9_\-]*T3Blbk[A-Za-z0-9_\-]*|"
                       r"(?i:bearer|basic)\s+\S*)\Z")


def scrub_prefix(data: bytes, keep: int) -> bytes:
    """The first `keep` bytes of `data`, scrubbed: a key straddling the cut is removed, not halved."""
    if len(data) <= keep:
        return scrub_bytes(data)
    return scrub_bytes(data[:keep], cut=True)


def scrub_column(values: Sequence[str | None]) -> Sequence[str | None]:
    """One string column of a batch: one pre-check over the whole column, per-value work only on a hit."""
    if not needs_scrub("\n".join(filter(None, values))):
        return values
    return [scrub_text(v) if v else v for v in values]


def scrub_metadata_column(values: Sequence[dict[str, str] | None]) -> list[list[tuple[str, str]] | None]:
    """A metadata column (name -> value maps) as Arrow map items, names and values scrubbed.

    Values under a credential-like name (`x-app-key`, `x-user-token`) are redacted whatever their shape.
    """
    present = [d for d in values if d]
    texts = "\n".join(chain.from_iterable(d.values() for d in present))
    names = set(chain.from_iterable(present))  # the same few header names on every row
    if not needs_scrub(texts) and not any(_name_is_risky(k) for k in names):
        return [list(d.items()) if d else None for d in values]
    return [[(scrub_text(k), scrub_value(k, v)) for k, v in d.items()] if d else None for d in values]


@lru_cache(maxsize=4096)
def _name_is_risky(name: str) -> bool:
    return bool(SECRET_NAME.search(name)) or needs_scrub(name)


def strip_scheme(value: str) -> str:
    """`Bearer sk-…` -> `sk-…` (Authorization header values)."""
    return _SCHEME.sub("", value).strip()


def looks_like_key(value: str) -> bool:
    return bool(_KEY.fullmatch(value))


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
