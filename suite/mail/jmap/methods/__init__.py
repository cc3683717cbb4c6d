"""One module per JMAP method (importing this package registers them all)."""

from suite.mail.jmap.methods import (  # noqa: F401
    blob_copy,
    core_echo,
    email_changes,
    email_get,
    email_query,
    email_set,
    identity_get,
    mailbox_changes,
    mailbox_get,
    mailbox_query,
    mailbox_set,
    submission_set,
    thread_changes,
    thread_get,
)
