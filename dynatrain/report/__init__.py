"""Rendering results: rich tables, JSON/CSV/Markdown export and plots."""
