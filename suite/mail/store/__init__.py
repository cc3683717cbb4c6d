"""The mail store: mailboxes, messages (blobs + rows), flags, UIDs, MODSEQ."""
