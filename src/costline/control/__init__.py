"""Budgets, alerts and their delivery: the I/O shell around core/budgets.py and core/alerts.py."""
