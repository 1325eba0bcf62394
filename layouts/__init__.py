"""Component trees of the dashboard: the shell around every page, each page, and the wall."""
