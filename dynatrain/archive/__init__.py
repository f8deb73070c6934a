"""Activation archives: the format, reading, writing and validation."""
