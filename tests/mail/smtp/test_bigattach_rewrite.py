"""The MIME side of big attachments as links (suite.mail.smtp.bigattach), without I/O: which parts
are big attachments, and what the rewritten message looks like to a reader (email, policy.default)."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage

from suite.mail.smtp.bigattach import find_big_parts, human_size, rewrite
from suite.mail.smtp.interfaces import SharedLink

LINK = SharedLink("http://files.example.test/p/tok", 1_800_000_000.0)  # 2027-01-15


def _raw(m: EmailMessage) -> bytes:
    return m.as_bytes(policy=policy.default.clone(linesep="\r\n"))


def test_only_attachments_over_the_threshold_of_a_multipart_message():
    m = EmailMessage()
    m["Subject"] = "x"
    m.set_content("text " * 100)  # a big text body is not an attachment
    m.add_alternative("<p>" + "html " * 100 + "</p>", subtype="html")
    m.add_attachment(b"\0" * 1001, maintype="application", subtype="zip", filename="big.zip")
    m.add_attachment(b"\0" * 1000, maintype="application", subtype="zip", filename="exact.zip")
    _, big = find_big_parts(_raw(m), 1000)
    assert [(b.filename, b.media_type, len(b.data)) for b in big] == [("big.zip", "application/zip", 1001)]
    single = EmailMessage()
    single.set_content(b"\0" * 5000, maintype="application", subtype="zip", filename="whole.zip")
    assert find_big_parts(_raw(single), 1000)[1] == []  # the message is the file: nothing left to send


def test_rewrite_keeps_the_rest_and_names_the_file_size_and_expiry():
    m = EmailMessage()
    m["From"] = "a@example.test"
    m["Subject"] = "Ferien"
    m.set_content("Grüße\n")
    m.add_attachment(b"\1" * (3 * 1024 * 1024), maintype="video", subtype="mp4", filename="Fähre <1>.mp4")
    m.add_attachment(b"small", maintype="application", subtype="octet-stream", filename="s.bin")
    msg, big = find_big_parts(_raw(m), 1024 * 1024)
    assert [b.filename for b in big] == ["Fähre <1>.mp4"]
    out = rewrite(msg, [(big[0], LINK)])
    assert len(out) < 10_000 and b"\r\r\n" not in out
    back = email.message_from_bytes(out, policy=policy.default)
    assert back["Subject"] == "Ferien" and back.get_body(("plain",)).get_content() == "Grüße\r\n"  # type: ignore[union-attr]
    names = {p.get_filename(): p for p in back.iter_attachments()}  # type: ignore[attr-defined]
    assert names["s.bin"].get_content() == b"small"
    (note,) = [p for n, p in names.items() if n is None]
    text = note.get_content()
    # 7bit on the wire whatever the file's name (the client may not have said 8BITMIME, RFC 6152)
    assert note.get_content_type() == "text/plain" and note["Content-Transfer-Encoding"] == "quoted-printable"
    assert "Fähre <1>.mp4 (3.0 MB)" in text and "until 2027-01-15" in text and LINK.url in text


def test_sizes_read_as_in_the_web_app():
    assert [human_size(n) for n in (0, 1023, 1024, 15 * 1024**2, 30 * 1024**2, 5 * 1024**3)] == [
        "0 B",
        "1023 B",
        "1.0 KB",
        "15 MB",
        "30 MB",
        "5.0 GB",
    ]
