"""The multi-file run: resolve each file's source, read it into chunks, commit in coalesced batches.

`IngestRun` is used by `ingest.files.ingest_batches` (the batch command, sequentially or with the
workers of `ingest.parallel`) and by the watcher.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from .copies import LeadCache, LiveFiles, copy_note
from .formats import RunInputs
from .pipeline import FileChanged, FileIngester, FileResult, IngestOptions
from .sources import (
    identify_open,
    identify_with_head,
    open_binary,
    tail_hash,
    tail_hash_open,
)
from .store import ChunkRows, CommitResult, Store


class IngestRun:
    """Reads files into chunks and commits them to the store in coalesced batches.

    Many small files make one commit (per table, split by date), not one per file; a batch is
    committed when it holds `batch_rows` calls or `batch_bytes` of input, and at `flush()`.
    """

    def __init__(self, store: Store, options: IngestOptions, run_inputs: RunInputs | None = None,
                 batch_rows: int = 40_000, batch_bytes: int = 16 << 20) -> None:
        self.store = store
        self.options = options
        self.ingester = FileIngester(store.hasher, options, run_inputs=run_inputs)
        self.batch_rows, self.batch_bytes = batch_rows, batch_bytes
        self.pending: list[ChunkRows] = []
        self._pending_end: dict[str, int] = {}
        self._rows = self._bytes = 0
        self.live_files: Callable[[], list[Path]] = lambda: []  # the files being read now (for identity)
        self._live: LiveFiles | None = None
        self._leads: LeadCache = {}

    def live(self) -> LiveFiles:
        """Every file being read now, identified once per pass."""
        if self._live is None:
            self._live = LiveFiles(self.live_files(), self._leads)
        return self._live

    def new_pass(self) -> None:
        self._live = None

    def read_file(self, path: Path, result: FileResult, final: bool | None = None, handle: BinaryIO | None = None,
                  max_chunks: int | None = None) -> Iterator[CommitResult]:
        """Resolve the file's source and offset, read it, and yield every batch committed meanwhile."""
        if handle is not None:
            ident, head = identify_open(handle)

            def tail_at(off: int) -> str | None:
                return tail_hash_open(handle, off)
        else:
            ident, head = identify_with_head(path)

            def tail_at(off: int) -> str | None:
                return tail_hash(path, off)
        if ident.fp_len == 0:
            if ident.compressed and ident.size > 0:  # not empty: damaged before its first bytes
                try:
                    with open_binary(path) as fh:
                        fh.read(1)
                except OSError as exc:
                    result.note = f"{exc.strerror or exc}: nothing could be read"
            return  # an empty file: nothing to read, and all empty files look alike
        resolved = self.store.resolve(ident, head, self.live, tail_at, str(path), handle)
        if resolved.copy_of:
            result.note = copy_note(resolved.copy_of)
            result.deferred = True
            return
        offset = max(resolved.offset, self.pending_end(resolved.source_id))
        result.source_id = resolved.source_id
        if resolved.note:
            result.note = resolved.note
        if resolved.duplicate_of:
            result.note = f"same first {ident.fp_len} bytes as {resolved.duplicate_of}; read as a separate source"
        try:
            for chunk in self.ingester.chunks(path, resolved.source_id, ident, offset, result, final, handle, max_chunks,
                                              resolved.format):
                committed = self.add(chunk)
                if committed is not None:
                    yield committed
        except FileChanged:
            result.note = "file was truncated or replaced while being read; it is re-read from its new identity"
            result.more = True

    def pending_end(self, source_id: str) -> int:
        """Where the chunks of `source_id` waiting in this batch end (0: none waiting)."""
        return self._pending_end.get(source_id, 0)

    def add(self, chunk: ChunkRows) -> CommitResult | None:
        self.pending.append(chunk)
        self._pending_end[chunk.source_id] = chunk.end
        self._rows += chunk.calls.num_rows if chunk.calls is not None else 0
        self._bytes += chunk.end - chunk.start
        if self._rows >= self.batch_rows or self._bytes >= self.batch_bytes:
            return self.flush()
        return None

    def flush(self) -> CommitResult | None:
        if not self.pending:
            return None
        batch, self.pending = self.pending, []
        self._pending_end.clear()
        self._rows = self._bytes = 0
        return self.store.commit_chunks(batch)
