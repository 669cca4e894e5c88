"""The interface every log format implements: a stateless `Format` and its per-file `FileParser`.

A format sees one decoded JSON record (or, for `kind = "text"`, one raw line) at a time:
`detect(record)` says whether it is this format's shape, `parse(record, ctx)` returns zero or more
Calls (zero: a line that is not an API call, e.g. an ordinary application log line) or raises
`RecordError` (quarantine). A format whose records span lines or depend on earlier lines (SSE
streams, a CSV header, batch dates) keeps that state in its own `FileParser` subclass, one per
file, with typed fields; formats register with `ingest.formats.registry`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ..keys import KeyHasher
from ..schema import Call

if TYPE_CHECKING:
    from ..wrappers import Unwrapper


@dataclass(slots=True)
class ParseContext:
    """What a parser needs besides the record: where it came from and how to treat keys."""

    source_file: str
    source_fp: str
    hasher: KeyHasher
    offset: int = 0
    store_system_prompt: bool = True
    fallback_ts: int | None = None  # file mtime, for formats whose records carry no date at all
    record_index: int = 0  # which of several records one line holds (an OTLP logs batch, a CloudWatch batch)
    unwrap: Unwrapper | None = None  # per-file container/cloud wrapper state (split lines being joined)

    def synthetic_id(self, index: int = 0) -> str:
        """A stable id for a call without a provider id: same file content + offset -> same id."""
        key = f"{self.source_fp}:{self.offset}:{index}"
        if self.record_index:
            key += f":r{self.record_index}"
        raw = key.encode()
        return "tt-" + hashlib.sha256(raw).hexdigest()[:24]

    def new_call(self, call_id: str | None, ts: int, fmt: str, index: int = 0) -> Call:
        return Call(
            call_id=call_id or self.synthetic_id(index),
            ts=ts,
            source_file=self.source_file,
            source_offset=self.offset,
            source_format=fmt,
        )


class Format:
    """Base class for a log format; subclasses set the class attributes, `detect` and `parse`.

    `priority` orders detection (lower is tried first): specific shapes before generic ones.
    """

    name: str
    description: str
    detection: str
    # "json": one JSON object per line. "text": the format reads raw lines (SSE, CSV).
    kind: ClassVar[Literal["json", "text"]] = "json"
    priority: int = 500

    def detect(self, record: Any) -> bool:
        raise NotImplementedError

    def parse(self, record: Any, ctx: ParseContext) -> list[Call]:
        """Calls in the record; [] for a record that is not this format's shape (skipped, not an error);
        RecordError for a record of this shape that is broken (quarantined). A stateful format
        implements this as its own parser would read the record alone in a file."""
        raise NotImplementedError

    def excludes(self, record: Any) -> bool:
        """True for a record the format's own filter rules out (a profile's `when:`): skipped, not quarantined."""
        return False

    def open_file(self, ctx: ParseContext, run_inputs: object | None = None) -> FileParser:
        """The parser for one file. `run_inputs` is what this format's `scan_run` returned for the run.
        A format that overrides this carries state from line to line: its files are never cut into ranges."""
        return self.record_parser(ctx)

    def record_parser(self, ctx: ParseContext) -> FileParser:
        """The per-file parser of a format that reads each record alone; a subclass may return a faster
        one (`fast_app`) that keeps no state from line to line (any line may start a range)."""
        return FileParser(self, ctx)

    def scan_run(self, paths: Sequence[Path]) -> object | None:
        """Before a run reads any file: what this format needs from all of them (None: nothing).
        The Batch API format indexes input files here so output lines can be joined to requests."""
        return None


class FileParser:
    """One file's parser: the format, the file's context, and (in subclasses) typed per-file state."""

    reads_lines: ClassVar[bool] = False  # True: `parse_line` may read a raw line itself

    def __init__(self, fmt: Format, ctx: ParseContext) -> None:
        self.format = fmt
        self.ctx = ctx

    def parse_line(self, data: bytes) -> list[Call] | None:
        """A fast path (`reads_lines`): the calls of one whole raw line, not wrapped, that this parser
        reads directly (never []); None to have it read the usual way (unwrapped, decoded, `parse`)."""
        return None

    def prepare(self, path: Path) -> None:
        """Per-file set-up before the first line is parsed (most formats need none)."""

    def parse(self, record: Any) -> list[Call]:
        """See `Format.parse`; the default parser has no state and asks the format."""
        return self.format.parse(record, self.ctx)

    def at_record_boundary(self) -> bool:
        """False while a multi-line record (an SSE stream) is half read: no chunk may end here."""
        return True

    def finish_file(self) -> list[Call]:
        """At the end of a file that will not grow: emit any record still open (e.g. a cut-off stream)."""
        return []
