"""tokentrail ingest: log files in, normalized calls in Parquet out."""
