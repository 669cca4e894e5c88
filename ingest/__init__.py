"""tokentrail ingest: log files in, `calls` and `quarantine` rows committed to the warehouse out.

The lower layer: it never imports `attribution` (an import contract checks it). Every
user-facing error class lives in `ingest.errors`. See docs/architecture.md.
"""
