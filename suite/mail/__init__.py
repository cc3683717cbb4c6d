"""Mail: the mail store, IMAP, SMTP and the outbound queue."""
