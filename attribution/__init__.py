"""tokentrail attribution: rules, prices, re-attribution, reports and the CLI."""
