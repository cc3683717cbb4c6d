"""Shared storage: SQL database, blob store, event bus."""
