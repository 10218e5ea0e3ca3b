"""Statistics and leaderboards from the store: ``python -m reports`` (see reports/README.md)."""
