"""Suite: self-hosted mail, calls and file sharing in one install."""

__version__ = "0.1.0"
