"""Runnable examples for tablesessions (not part of the installed package)."""
