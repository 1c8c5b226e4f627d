"""Shared file plumbing: atomic writes, JSON artifacts, the input-error type."""
