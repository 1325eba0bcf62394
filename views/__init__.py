"""Pure builders behind the dashboard: view state from URLs, snapshots from the read API, figures from snapshots."""
