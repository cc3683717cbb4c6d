"""SMTP replies used by the Suite SMTP servers, as named constants.

Each reply carries its RFC 3463 enhanced status code (RFC 2034 §3: every reply
except the greeting and the EHLO/HELO answer carries one).
"""

from __future__ import annotations

from typing import NamedTuple


class Reply(NamedTuple):
    code: int
    enhanced: str
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}"

    def with_text(self, text: str) -> Reply:
        return Reply(self.code, self.enhanced, text)

    @property
    def is_positive(self) -> bool:
        return self.code < 400


# --- 2xx -------------------------------------------------------------------
OK = Reply(250, "2.0.0", "OK")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
MESSAGE_ACCEPTED = Reply(250, "2.0.0", "Message accepted for delivery")
RESET_OK = Reply(250, "2.0.0", "Reset OK")
BYE = Reply(221, "2.0.0", "Bye")
READY_TLS = Reply(220, "2.0.0", "Ready to start TLS")  # RFC 3207 §4
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")  # RFC 4954 §6

# --- 3xx -------------------------------------------------------------------
START_DATA = "354 End data with <CR><LF>.<CR><LF>"  # RFC 5321 §4.2.2: no enhanced code on 354

# --- 4xx -------------------------------------------------------------------
TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Too many connections from your address, try again later")
RATE_LIMITED = Reply(421, "4.7.0", "Connection rate limit exceeded, try again later")
SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down")
LOCAL_ERROR = Reply(451, "4.3.0", "Local error in processing, try again later")
TEMP_AUTH_FAILURE = Reply(454, "4.7.0", "Temporary authentication failure")  # RFC 4954 §6
AUTH_LOCKED = Reply(454, "4.7.0", "Too many failed authentication attempts, try again later")
TLS_NOT_AVAILABLE = Reply(454, "4.7.0", "TLS not available")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")  # RFC 5321 §4.5.3.1.10
TEMP_POLICY_FAILURE = Reply(451, "4.7.1", "Temporary policy failure, try again later")

# --- 5xx -------------------------------------------------------------------
SYNTAX_ERROR = Reply(500, "5.5.2", "Syntax error")
LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")
PARAM_SYNTAX = Reply(501, "5.5.4", "Syntax error in parameters or arguments")
MAIL_SYNTAX = Reply(501, "5.5.4", "Syntax: MAIL FROM:<address> [SP <mail-parameters>]")
RCPT_SYNTAX = Reply(501, "5.5.4", "Syntax: RCPT TO:<address> [SP <rcpt-parameters>]")
NOT_IMPLEMENTED = Reply(502, "5.5.1", "Command not implemented")
BAD_SEQUENCE = Reply(503, "5.5.1", "Bad sequence of commands")
NEED_HELO = Reply(503, "5.5.1", "Send EHLO/HELO first")
NESTED_MAIL = Reply(503, "5.5.1", "Nested MAIL command")
NEED_MAIL = Reply(503, "5.5.1", "Need MAIL command")
NEED_RCPT = Reply(503, "5.5.1", "Need RCPT command")
ALREADY_AUTHENTICATED = Reply(503, "5.5.1", "Already authenticated")
AUTH_NOT_AVAILABLE = Reply(502, "5.5.1", "AUTH not available on this service")
UNKNOWN_MECHANISM = Reply(504, "5.5.4", "Unrecognized authentication type")
PARAM_NOT_IMPLEMENTED = Reply(555, "5.5.4", "Parameter not recognized or not implemented")
AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")  # RFC 4954 §6
STARTTLS_REQUIRED = Reply(530, "5.7.0", "Must issue a STARTTLS command first")  # RFC 3207 §4
AUTH_INVALID = Reply(535, "5.7.8", "Authentication credentials invalid")  # RFC 4954 §6
AUTH_ABORTED = Reply(501, "5.7.0", "Authentication aborted")  # RFC 4954 §4
AUTH_BAD_BASE64 = Reply(501, "5.5.2", "Cannot decode response")  # RFC 4954 §4
UNKNOWN_USER = Reply(550, "5.1.1", "No such user here")
RELAY_DENIED = Reply(550, "5.7.1", "Relaying denied")
BAD_ADDRESS = Reply(553, "5.1.3", "Malformed address")
SENDER_NOT_ALLOWED = Reply(553, "5.7.1", "Sender address not allowed for this account")
NON_ASCII_NEEDS_SMTPUTF8 = Reply(553, "5.6.7", "Non-ASCII address requires the SMTPUTF8 parameter")  # RFC 6531 §3.4
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")  # RFC 1870 §6.3
BARE_CR_LF = Reply(550, "5.6.0", "Bare CR or LF in message data is not allowed (RFC 5321 §2.3.8)")
DATA_LINE_TOO_LONG = Reply(550, "5.6.0", "Message line too long (RFC 5321 §4.5.3.1.6)")
BAD_HEADER = Reply(550, "5.6.0", "Malformed message header")
DMARC_REJECT = Reply(550, "5.7.1", "Rejected by DMARC policy of the sender domain")
TRANSACTION_FAILED = Reply(554, "5.0.0", "Transaction failed")
NO_VALID_RECIPIENTS = Reply(554, "5.5.1", "No valid recipients")
TLS_REFUSED = Reply(554, "5.7.0", "Command refused due to lack of security")

# Default enhanced codes for replies produced by aiosmtpd itself that lack one.
DEFAULT_ENHANCED: dict[int, str] = {
    211: "2.0.0",
    214: "2.0.0",
    220: "2.0.0",
    221: "2.0.0",
    235: "2.7.0",
    250: "2.0.0",
    252: "2.5.0",
    421: "4.3.0",
    450: "4.2.0",
    451: "4.3.0",
    452: "4.3.1",
    454: "4.7.0",
    500: "5.5.2",
    501: "5.5.4",
    502: "5.5.1",
    503: "5.5.1",
    504: "5.5.4",
    521: "5.3.2",
    530: "5.7.0",
    534: "5.7.9",
    535: "5.7.8",
    538: "5.7.11",
    550: "5.0.0",
    551: "5.1.6",
    552: "5.3.4",
    553: "5.1.3",
    554: "5.0.0",
    555: "5.5.4",
}
