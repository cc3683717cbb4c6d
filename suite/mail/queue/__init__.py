"""Outbound mail queue: persistent retries, MX delivery, DKIM signing, DSNs."""
