"""Who may see what: roles, accounts, wall tokens, grants of the precise health view and the audit log.

``python -m accounts`` manages them from a shell; ``accounts.web`` puts them in front of the dashboard.
"""
