"""IMAP4rev1/IMAP4rev2 server: sans-I/O parser, typed commands, response encoder."""
