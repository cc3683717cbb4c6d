"""Capabilities and the limits the server enforces (RFC 8620 §2 core capability, RFC 8621 §1.3)."""

from __future__ import annotations

from dataclasses import dataclass

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
SUBMISSION = "urn:ietf:params:jmap:submission"
VACATION = "urn:ietf:params:jmap:vacationresponse"
KNOWN = {CORE, MAIL, SUBMISSION, VACATION}

SORT_OPTIONS = ["receivedAt", "sentAt", "size", "from", "to", "subject", "hasKeyword"]


@dataclass(frozen=True)
class Limits:
    max_size_upload: int = 50 * 1024 * 1024
    max_concurrent_upload: int = 4
    max_size_request: int = 10 * 1024 * 1024
    max_concurrent_requests: int = 4
    max_calls_in_request: int = 16
    max_objects_in_get: int = 500
    max_objects_in_set: int = 500
    max_changes: int = 5000
    max_body_value_bytes: int = 1024 * 1024

    def core(self) -> dict:
        return {
            "maxSizeUpload": self.max_size_upload,
            "maxConcurrentUpload": self.max_concurrent_upload,
            "maxSizeRequest": self.max_size_request,
            "maxConcurrentRequests": self.max_concurrent_requests,
            "maxCallsInRequest": self.max_calls_in_request,
            "maxObjectsInGet": self.max_objects_in_get,
            "maxObjectsInSet": self.max_objects_in_set,
            "collationAlgorithms": ["i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap"],
        }


def mail_account_capability() -> dict:
    # RFC 8621 §1.3.1
    return {
        "maxMailboxesPerEmail": None,
        "maxMailboxDepth": None,
        "maxSizeMailboxName": 490,
        "maxSizeAttachmentsPerEmail": 50 * 1024 * 1024,
        "emailQuerySortOptions": SORT_OPTIONS,
        "mayCreateTopLevelMailbox": True,
    }


MAX_DELAYED_SEND = 7 * 86400  # seconds a submission may be held (RFC 4865 FUTURERELEASE)


def submission_account_capability() -> dict:
    # RFC 8621 §1.3.2; RFC 4865 §3: the EHLO keyword's parameters are the longest hold in seconds
    # and the latest release date-time
    import time
    from datetime import UTC, datetime

    latest = datetime.fromtimestamp(time.time() + MAX_DELAYED_SEND, UTC).isoformat(timespec="seconds")
    return {
        "maxDelayedSend": MAX_DELAYED_SEND,
        "submissionExtensions": {"FUTURERELEASE": [str(MAX_DELAYED_SEND), latest.replace("+00:00", "Z")]},
    }


def account_id(n: int) -> str:
    return f"A{n}"
