"""Analysis layer: tables, threshold finding, command line (reads ``sim``; never the reverse)."""
