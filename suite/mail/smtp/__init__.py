"""SMTP protocol layer: inbound MX and submission servers built on aiosmtpd.

Streaming DATA with SMTP-smuggling protection, STARTTLS rules, AUTH through an
``Authenticator`` interface, and inbound SPF/DKIM/DMARC evaluation.
"""
