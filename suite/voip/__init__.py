"""Calls: signalling, TURN credentials, media agent."""
