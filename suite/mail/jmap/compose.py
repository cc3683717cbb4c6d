"""An Email object from Email/set create or Email/import-less drafts (RFC 8621 §4.6) turned into
RFC 5322 bytes with the stdlib ``email`` package. Pure: attachment bytes are passed in."""

from __future__ import annotations

import email.utils
import secrets
import time
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

ADDRESS_PROPS = {"from": "From", "to": "To", "cc": "Cc", "bcc": "Bcc", "replyTo": "Reply-To", "sender": "Sender"}
CREATE_PROPS = {
    "mailboxIds",
    "keywords",
    "receivedAt",
    "messageId",
    "inReplyTo",
    "references",
    "sender",
    "from",
    "to",
    "cc",
    "bcc",
    "replyTo",
    "subject",
    "sentAt",
    "bodyStructure",
    "bodyValues",
    "textBody",
    "htmlBody",
    "attachments",
    "headers",
}


class ComposeError(Exception):
    def __init__(self, message: str, properties: list[str]) -> None:
        super().__init__(message)
        self.properties = properties


def blob_ids(obj: dict) -> list[str]:
    out = []
    for a in obj.get("attachments") or []:
        if isinstance(a, dict) and isinstance(a.get("blobId"), str):
            out.append(a["blobId"])
    return out


def _addresses(value: Any, prop: str) -> str:
    if not isinstance(value, list):
        raise ComposeError(f"{prop} must be a list of EmailAddress", [prop])
    out = []
    for a in value:
        if not isinstance(a, dict) or not isinstance(a.get("email"), str) or "@" not in a["email"]:
            raise ComposeError(f"{prop} has a bad EmailAddress", [prop])
        name = a.get("name") or ""
        if not isinstance(name, str) or any(c in a["email"] for c in "\r\n<>, "):
            raise ComposeError(f"{prop} has a bad EmailAddress", [prop])
        local, _, domain = a["email"].rpartition("@")
        try:
            out.append(str(Address(display_name=name, username=local, domain=domain)))
        except (ValueError, IndexError):
            raise ComposeError(f"{prop} has a bad EmailAddress", [prop]) from None
    return ", ".join(out)


def _msgids(value: Any, prop: str) -> str:
    if not isinstance(value, list) or not all(
        isinstance(v, str) and v and "<" not in v and ">" not in v and " " not in v for v in value
    ):
        raise ComposeError(f"{prop} must be a list of message ids", [prop])
    return " ".join(f"<{v}>" for v in value)


def _text(obj: dict, part: Any, prop: str) -> str:
    values = obj.get("bodyValues") or {}
    if not isinstance(part, dict) or not isinstance(part.get("partId"), str):
        raise ComposeError(f"{prop} needs a partId with a bodyValue", [prop])
    v = values.get(part["partId"])
    if not isinstance(v, dict) or not isinstance(v.get("value"), str):
        raise ComposeError(f"no bodyValue for part {part['partId']!r}", ["bodyValues"])
    return v["value"]


def build(obj: dict, hostname: str, blobs: dict[str, bytes]) -> bytes:
    bad = [k for k in obj if k not in CREATE_PROPS and not k.startswith("header:")]
    if bad:
        raise ComposeError(f"unknown property {bad[0]!r}", bad)
    msg = EmailMessage(policy=SMTP)
    for prop, name in ADDRESS_PROPS.items():
        if obj.get(prop):
            msg[name] = _addresses(obj[prop], prop)
    subject = obj.get("subject")
    if subject is not None:
        if not isinstance(subject, str) or "\n" in subject or "\r" in subject:
            raise ComposeError("subject must be a one-line string", ["subject"])
        msg["Subject"] = subject
    sent = obj.get("sentAt")
    if sent is not None:
        try:
            msg["Date"] = email.utils.format_datetime(datetime.fromisoformat(sent.replace("Z", "+00:00")))
        except (AttributeError, ValueError):
            raise ComposeError("sentAt must be a Date", ["sentAt"]) from None
    else:
        msg["Date"] = email.utils.formatdate(time.time(), localtime=False)
    if obj.get("messageId"):
        msg["Message-ID"] = _msgids(obj["messageId"], "messageId")
    else:
        msg["Message-ID"] = f"<{secrets.token_hex(16)}@{hostname}>"
    if obj.get("inReplyTo"):
        msg["In-Reply-To"] = _msgids(obj["inReplyTo"], "inReplyTo")
    if obj.get("references"):
        msg["References"] = _msgids(obj["references"], "references")
    for key, value in obj.items():
        if key.startswith("header:"):
            parts = key.split(":")
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("asRaw", "asText")):
                raise ComposeError(f"cannot set {key!r}", [key])
            if not isinstance(value, str) or "\r" in value or "\n" in value:
                raise ComposeError(f"{key} must be a one-line string", [key])
            msg[parts[1]] = value.strip()
    text_parts = obj.get("textBody") or []
    html_parts = obj.get("htmlBody") or []
    if obj.get("bodyStructure") is not None:
        bs = obj["bodyStructure"]
        if isinstance(bs, dict) and bs.get("type") == "text/html":
            html_parts = [bs]
        else:
            text_parts = [bs]
    if (
        not isinstance(text_parts, list)
        or not isinstance(html_parts, list)
        or len(text_parts) > 1
        or len(html_parts) > 1
    ):
        raise ComposeError("textBody and htmlBody hold one part each", ["textBody"])
    text = _text(obj, text_parts[0], "textBody") if text_parts else None
    html = _text(obj, html_parts[0], "htmlBody") if html_parts else None
    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    else:
        msg.set_content("")
    for att in obj.get("attachments") or []:
        if not isinstance(att, dict) or att.get("blobId") not in blobs:
            raise ComposeError("attachment blob not found", ["attachments"])
        ctype = att.get("type") or "application/octet-stream"
        if not isinstance(ctype, str) or ctype.count("/") != 1:
            raise ComposeError("bad attachment type", ["attachments"])
        maintype, subtype = ctype.lower().split("/")
        data = blobs[att["blobId"]]
        kw: dict[str, Any] = {"filename": att.get("name") or None}
        if att.get("disposition") == "inline":
            kw["disposition"] = "inline"
        if att.get("cid"):
            kw["cid"] = f"<{att['cid']}>"
        if maintype == "text":
            msg.add_attachment(data.decode("utf-8", "replace"), subtype=subtype, **kw)
        else:
            msg.add_attachment(data, maintype=maintype, subtype=subtype, **kw)
    return msg.as_bytes(policy=SMTP)
