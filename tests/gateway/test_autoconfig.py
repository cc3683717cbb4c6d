"""Mail apps set themselves up (issue 16 item 5): Thunderbird autoconfig (both URLs) checked with an
XML parser against Thunderbird's own field rules (its readFromXML: element names, types, socketType
and authentication values, ``%EMAILADDRESS%``), Outlook autodiscover, the Apple profile without a
password, the SRV records of ``suite dns``."""

from __future__ import annotations

import plistlib
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import httpx
import pytest

from suite.gateway.service import GatewayService
from suite.mail.queue import dnsrecords

PW = "correct horse battery"
ALICE = "alice@example.test"

# Thunderbird comm/mailnews/base/prefs/content/accountcreation readFromXML.sys.mjs (sanitize.enum lists)
TB_INCOMING_TYPES = {"pop3", "imap", "nntp", "exchange"}
TB_SOCKET_TYPES = {"plain", "SSL", "STARTTLS"}
TB_AUTH = {
    "password-cleartext",
    "plain",
    "password-encrypted",
    "secure",
    "GSSAPI",
    "NTLM",
    "TLS-client-cert",
    "OAuth2",
    "none",
    "client-IP-address",
}
TB_PLACEHOLDERS = {"%EMAILADDRESS%", "%EMAILLOCALPART%", "%EMAILDOMAIN%", "%REALNAME%"}


@pytest.fixture
async def gw(ctx):
    ctx.settings.http_port = 0
    ctx.settings.hostname = "mail.example.test"
    ctx.settings.imaps_port, ctx.settings.submissions_port, ctx.settings.submission_port = 993, 465, 587
    await ctx.accounts.add_domain("example.test")
    await ctx.accounts.add_account(ALICE, PW, display_name="Alice")
    svc = GatewayService(ctx)
    await svc.start()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.port}", timeout=20) as c:
        yield c
    await svc.stop()


def check_thunderbird(xml: bytes) -> dict:
    """Apply Thunderbird's rules; return what a client would take."""
    root = ET.fromstring(xml)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    prov = root.find("emailProvider")
    assert prov is not None and prov.get("id") and prov.findtext("domain")
    servers = {"in": [], "out": []}
    for kind, key in (("incomingServer", "in"), ("outgoingServer", "out")):
        for s in prov.findall(kind):
            t = s.get("type")
            assert t in (TB_INCOMING_TYPES if key == "in" else {"smtp"}), t
            host = s.findtext("hostname")
            assert host and " " not in host
            port = int(s.findtext("port"))
            assert 1 <= port <= 65535
            assert s.findtext("socketType") in TB_SOCKET_TYPES
            auths = [a.text for a in s.findall("authentication")]
            assert auths and all(a in TB_AUTH for a in auths)
            user = s.findtext("username")
            assert user in TB_PLACEHOLDERS, user
            servers[key].append((t, host, port, s.findtext("socketType"), user))
    return servers


async def test_thunderbird_autoconfig_both_urls(gw):
    r = await gw.get("/.well-known/autoconfig/mail/config-v1.1.xml", params={"emailaddress": ALICE})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    s = check_thunderbird(r.content)
    assert s["in"] == [("imap", "mail.example.test", 993, "SSL", "%EMAILADDRESS%")]
    assert s["out"] == [
        ("smtp", "mail.example.test", 465, "SSL", "%EMAILADDRESS%"),
        ("smtp", "mail.example.test", 587, "STARTTLS", "%EMAILADDRESS%"),
    ]
    ns = {"s": "urn:x-suite:autoconfig"}
    root = ET.fromstring(r.content)
    assert root.findtext("emailProvider/s:managesieve/s:port", namespaces=ns) == "4190"
    assert root.findtext("emailProvider/s:webdav/s:url", namespaces=ns).endswith("/dav/")
    # the autoconfig.<domain> host form (Thunderbird's second lookup), no query needed
    r = await gw.get("/mail/config-v1.1.xml", headers={"Host": "autoconfig.example.test"})
    assert r.status_code == 200
    assert check_thunderbird(r.content) == s
    # other domains: nothing
    r = await gw.get("/.well-known/autoconfig/mail/config-v1.1.xml", params={"emailaddress": "x@other.test"})
    assert r.status_code == 404 and r.json()["error"]
    assert (
        await gw.get("/.well-known/autoconfig/mail/config-v1.1.xml", params={"emailaddress": "nope"})
    ).status_code == 400


AD_REQUEST = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request><EMailAddress>{}</EMailAddress>
  <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request></Autodiscover>"""


async def test_outlook_autodiscover(gw):
    r = await gw.post("/autodiscover/autodiscover.xml", content=AD_REQUEST.format(ALICE))
    assert r.status_code == 200
    ns = {
        "a": "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006",
        "o": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a",
    }
    root = ET.fromstring(r.content)
    protos = {
        p.findtext("o:Type", namespaces=ns): p for p in root.findall("o:Response/o:Account/o:Protocol", namespaces=ns)
    }
    assert set(protos) == {"IMAP", "SMTP"}
    assert protos["IMAP"].findtext("o:Port", namespaces=ns) == "993"
    assert protos["IMAP"].findtext("o:SSL", namespaces=ns) == "on"
    assert protos["SMTP"].findtext("o:LoginName", namespaces=ns) == ALICE
    assert (await gw.post("/autodiscover/autodiscover.xml", content=b"<not xml")).status_code == 400
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    assert (await gw.post("/autodiscover/autodiscover.xml", content=bomb)).status_code == 400
    assert (await gw.post("/autodiscover/autodiscover.xml", content=b"x" * 20_000)).status_code == 413
    r = await gw.post("/autodiscover/autodiscover.xml", content=AD_REQUEST.format("bob@elsewhere.test"))
    assert r.status_code == 404


async def test_mobileconfig_has_no_password_and_setup_json(gw):
    assert (await gw.get("/api/settings/mail-setup/mobileconfig")).status_code == 401
    assert (await gw.post("/api/login", json={"address": ALICE, "password": PW})).status_code == 200
    r = await gw.get("/api/settings/mail-setup/mobileconfig")
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-apple-aspen-config"
    profile = plistlib.loads(r.content)
    (acct,) = profile["PayloadContent"]
    assert acct["PayloadType"] == "com.apple.mail.managed" and acct["EmailAddress"] == ALICE
    assert acct["IncomingMailServerPortNumber"] == 993 and acct["IncomingMailServerUseSSL"] is True

    def keys(x):
        if isinstance(x, dict):
            for k, v in x.items():
                yield k
                yield from keys(v)
        elif isinstance(x, list):
            for v in x:
                yield from keys(v)

    assert not [k for k in keys(profile) if "Password" in k and k != "OutgoingPasswordSameAsIncomingPassword"]
    assert PW.encode() not in r.content
    setup = (await gw.get("/api/settings/mail-setup")).json()
    assert setup["imap"] == {"host": "mail.example.test", "port": 993, "security": "SSL/TLS"}
    assert setup["managesieve"]["port"] == 4190 and setup["needs_app_password"] is False
    # the QR code for phones: the public profile URL, drawn by the server
    assert setup["phone_qr_svg"].startswith("<svg") and "<script" not in setup["phone_qr_svg"]
    gw.cookies.clear()
    url = urlsplit(setup["phone_profile_url"])
    r = await gw.get(f"{url.path}?{url.query}")  # a phone has no web session
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-apple-aspen-config"
    public = plistlib.loads(r.content)
    assert public["PayloadContent"][0]["EmailAddress"] == ALICE
    assert not [k for k in keys(public) if "Password" in k and k != "OutgoingPasswordSameAsIncomingPassword"]
    assert public["PayloadContent"][0]["EmailAccountName"] == ALICE  # no display name to strangers
    assert (await gw.get("/.well-known/suite/mobileconfig?emailaddress=eve@elsewhere.test")).status_code == 404
    assert (await gw.get("/.well-known/suite/mobileconfig")).status_code == 400


async def test_suite_dns_has_rfc6186_srv_records(ctx):
    await ctx.accounts.add_domain("example.test")
    ctx.settings.hostname = "mail.example.test"
    recs = {(r.name, r.rdtype): r.value for r in await dnsrecords.records(ctx, "example.test")}
    assert recs[("_imaps._tcp.example.test.", "SRV")] == "0 1 993 mail.example.test."
    assert recs[("_submission._tcp.example.test.", "SRV")] == "0 1 587 mail.example.test."
    assert recs[("_sieve._tcp.example.test.", "SRV")] == "0 1 4190 mail.example.test."
    assert recs[("_imap._tcp.example.test.", "SRV")] == "0 0 0 ."
    assert recs[("_pop3._tcp.example.test.", "SRV")] == "0 0 0 ."
