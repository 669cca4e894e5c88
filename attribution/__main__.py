"""`python -m attribution` runs the `tokentrail` CLI (used by tests that need a real subprocess)."""

from attribution.cli import main

main()
