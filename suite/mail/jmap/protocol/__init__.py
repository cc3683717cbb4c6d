"""The JMAP protocol alone (RFC 8620): parsing, references, errors, ids. Sans-I/O."""
