"""Mail apps set themselves up (issue 16 item 5): Thunderbird autoconfig, Outlook autodiscover and
an Apple configuration profile, all from the settings (host name, ports) for a local domain.

* ``GET /.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=…`` and, on the ``autoconfig.``
  host, ``GET /mail/config-v1.1.xml`` — Mozilla's clientConfig v1.1 (Thunderbird's field rules:
  ``%EMAILADDRESS%`` as the user name, socketType SSL/STARTTLS, authentication
  password-cleartext over TLS). ManageSieve and the WebDAV files follow in elements of our own
  namespace, which Thunderbird's parser skips.
* ``POST /autodiscover/autodiscover.xml`` — Outlook's POX autodiscover (response schema 2006a).
* ``GET /api/settings/mail-setup`` (JSON for the "Set up a mail app" page, with a QR code of the
  phone profile's URL) and ``GET /api/settings/mail-setup/mobileconfig`` — an Apple
  ``.mobileconfig`` for the signed-in user, without any password (the device asks for it; with a
  second factor on: an app password).
* ``GET /.well-known/suite/mobileconfig?emailaddress=…`` — the same profile for a phone that
  scanned the QR code and has no web session: public like autoconfig, so it holds only what the
  address and the server settings say (no display name, no check that the account exists).

An address of a domain that is not ours gets 404: the documents say nothing about other domains.
"""

from __future__ import annotations

import plistlib
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit
from xml.etree import ElementTree as ET

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from suite.accounts.store import AccountError, normalize_address, normalize_domain
from suite.gateway import auth
from suite.gateway.dav import MOUNT as DAV_MOUNT
from suite.gateway.errors import ApiError
from suite.gateway.settings_routes import qr_svg

SUITE_NS = "urn:x-suite:autoconfig"
MAX_AUTODISCOVER_BODY = 16 * 1024
AD_REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
AD_RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
AD_OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


@dataclass(frozen=True, slots=True)
class Endpoints:
    host: str
    imaps: int
    submission: int  # STARTTLS (RFC 6409)
    submissions: int  # implicit TLS (RFC 8314)
    managesieve: int
    dav_url: str


def endpoints(settings) -> Endpoints:
    base = settings.base_url.rstrip("/")
    return Endpoints(
        host=settings.hostname,
        imaps=settings.imaps_port,
        submission=settings.submission_port,
        submissions=settings.submissions_port,
        managesieve=settings.managesieve_port,
        dav_url=base + DAV_MOUNT + "/",
    )


async def _local_domain(request: Request, address: str | None, host_domain: str | None = None) -> tuple[str, str]:
    """(address or "", domain) of a domain we serve; 404 otherwise."""
    try:
        if address:
            local, domain = normalize_address(address)
            address = f"{local}@{domain}"
        elif host_domain:
            domain, address = normalize_domain(host_domain), ""
        else:
            raise ApiError(400, "give ?emailaddress=you@example.org")
    except AccountError:
        raise ApiError(400, "not an email address") from None
    if not await request.app.state.ctx.accounts.is_local_domain(domain):
        raise ApiError(404, f"{domain} is not served here")
    return address, domain


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _server(parent: ET.Element, kind: str, type_: str, host: str, port: int, socket_type: str) -> None:
    s = _sub(parent, kind, type=type_)
    _sub(s, "hostname", host)
    _sub(s, "port", str(port))
    _sub(s, "socketType", socket_type)
    _sub(s, "authentication", "password-cleartext")  # over TLS only
    _sub(s, "username", "%EMAILADDRESS%")


def thunderbird_config(domain: str, ep: Endpoints) -> bytes:
    ET.register_namespace("suite", SUITE_NS)
    root = ET.Element("clientConfig", version="1.1")
    prov = _sub(root, "emailProvider", id=domain)
    _sub(prov, "domain", domain)
    _sub(prov, "displayName", f"Suite mail for {domain}")
    _sub(prov, "displayShortName", "Suite")
    _server(prov, "incomingServer", "imap", ep.host, ep.imaps, "SSL")
    # RFC 8314 §3.3: implicit TLS first, STARTTLS submission second
    _server(prov, "outgoingServer", "smtp", ep.host, ep.submissions, "SSL")
    _server(prov, "outgoingServer", "smtp", ep.host, ep.submission, "STARTTLS")
    sieve = _sub(prov, f"{{{SUITE_NS}}}managesieve")
    _sub(sieve, f"{{{SUITE_NS}}}hostname", ep.host)
    _sub(sieve, f"{{{SUITE_NS}}}port", str(ep.managesieve))
    _sub(sieve, f"{{{SUITE_NS}}}socketType", "STARTTLS")  # RFC 5804 §2.2
    _sub(sieve, f"{{{SUITE_NS}}}username", "%EMAILADDRESS%")
    dav = _sub(prov, f"{{{SUITE_NS}}}webdav")
    _sub(dav, f"{{{SUITE_NS}}}url", ep.dav_url)
    _sub(dav, f"{{{SUITE_NS}}}username", "%EMAILADDRESS%")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


async def thunderbird(request: Request) -> Response:
    host = (request.url.hostname or "").lower()
    host_domain = host[len("autoconfig.") :] if host.startswith("autoconfig.") else None
    _, domain = await _local_domain(request, request.query_params.get("emailaddress"), host_domain)
    body = thunderbird_config(domain, endpoints(request.app.state.ctx.settings))
    return Response(body, media_type="application/xml", headers={"Cache-Control": "no-store"})


def outlook_response(address: str, ep: Endpoints) -> bytes:
    root = ET.Element("Autodiscover", xmlns=AD_RESPONSE_NS)
    resp = _sub(root, "Response", xmlns=AD_OUTLOOK_NS)
    acct = _sub(resp, "Account")
    _sub(acct, "AccountType", "email")
    _sub(acct, "Action", "settings")
    for type_, port in (("IMAP", ep.imaps), ("SMTP", ep.submissions)):
        p = _sub(acct, "Protocol")
        _sub(p, "Type", type_)
        _sub(p, "Server", ep.host)
        _sub(p, "Port", str(port))
        _sub(p, "DomainRequired", "off")
        _sub(p, "LoginName", address)
        _sub(p, "SPA", "off")
        _sub(p, "SSL", "on")
        _sub(p, "AuthRequired", "on")
        if type_ == "SMTP":
            _sub(p, "UsePOPAuth", "on")
            _sub(p, "SMTPLast", "off")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8")


async def outlook(request: Request) -> Response:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_AUTODISCOVER_BODY):
        raise ApiError(413, f"autodiscover requests are limited to {MAX_AUTODISCOVER_BODY} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_AUTODISCOVER_BODY:
            raise ApiError(413, f"autodiscover requests are limited to {MAX_AUTODISCOVER_BODY} bytes")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise ApiError(400, "DTDs are not accepted")  # no entity expansion, ever
    try:
        root = ET.fromstring(bytes(body))
    except ET.ParseError:
        raise ApiError(400, "the request is not XML") from None
    email = root.findtext(f"{{{AD_REQUEST_NS}}}Request/{{{AD_REQUEST_NS}}}EMailAddress")
    if not email:
        raise ApiError(400, "the request has no Request/EMailAddress")
    address, _ = await _local_domain(request, email.strip())
    xml = outlook_response(address, endpoints(request.app.state.ctx.settings))
    return Response(xml, media_type="application/xml")


def mobileconfig(address: str, display_name: str, ep: Endpoints) -> bytes:
    """An Apple configuration profile with one IMAP account; no password in it."""
    ident = "org.suite." + ".".join(reversed(ep.host.split(".")))
    account = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{ident}.mail.{address}",
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"suite-mail:{ep.host}:{address}")).upper(),
        "PayloadDisplayName": f"Mail ({address})",
        "EmailAccountDescription": address,
        "EmailAccountName": display_name or address,
        "EmailAccountType": "EmailTypeIMAP",
        "EmailAddress": address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerHostName": ep.host,
        "IncomingMailServerPortNumber": ep.imaps,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": address,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": ep.host,
        "OutgoingMailServerPortNumber": ep.submissions,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": address,
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{ident}.{address}",
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"suite-profile:{ep.host}:{address}")).upper(),
        "PayloadDisplayName": f"Suite mail for {address}",
        "PayloadContent": [account],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)


def _phone_profile_url(base: str, address: str) -> str:
    return f"{base}/.well-known/suite/mobileconfig?{urlencode({'emailaddress': address})}"


def _profile_response(body: bytes) -> Response:
    return Response(
        body,
        media_type="application/x-apple-aspen-config",
        headers={"Content-Disposition": 'attachment; filename="suite-mail.mobileconfig"', "Cache-Control": "no-store"},
    )


async def phone_mobileconfig(request: Request) -> Response:
    address, _ = await _local_domain(request, request.query_params.get("emailaddress"))
    if not address:
        raise ApiError(400, "give ?emailaddress=you@example.org")
    return _profile_response(mobileconfig(address, "", endpoints(request.app.state.ctx.settings)))


async def mail_setup(request: Request) -> JSONResponse:
    c = await auth.require(request)
    ctx = request.app.state.ctx
    ep = endpoints(ctx.settings)
    domain = c.account.address.rpartition("@")[2]
    base = ctx.settings.base_url.rstrip("/")
    phone = _phone_profile_url(base, c.account.address)
    return JSONResponse(
        {
            "address": c.account.address,
            "needs_app_password": await ctx.accounts.security.has_second_factor(c.account.id),
            "imap": {"host": ep.host, "port": ep.imaps, "security": "SSL/TLS"},
            "smtp": [
                {"host": ep.host, "port": ep.submissions, "security": "SSL/TLS"},
                {"host": ep.host, "port": ep.submission, "security": "STARTTLS"},
            ],
            "managesieve": {"host": ep.host, "port": ep.managesieve, "security": "STARTTLS"},
            "webdav": ep.dav_url,
            "autoconfig_url": f"{base}/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress={c.account.address}",
            "autoconfig_host": f"autoconfig.{domain}",
            "mobileconfig_url": f"{base}/api/settings/mail-setup/mobileconfig",
            "phone_profile_url": phone,
            # the phone's camera opens the profile URL (iOS installs it; others show where to go)
            "phone_qr_svg": qr_svg(phone),
            "public_host": urlsplit(base).hostname,
        }
    )


async def mail_setup_mobileconfig(request: Request) -> Response:
    c = await auth.require(request)
    return _profile_response(
        mobileconfig(c.account.address, c.account.display_name, endpoints(request.app.state.ctx.settings))
    )


ROUTES = [
    Route("/.well-known/autoconfig/mail/config-v1.1.xml", thunderbird),
    Route("/mail/config-v1.1.xml", thunderbird),
    Route("/autodiscover/autodiscover.xml", outlook, methods=["POST"]),
    Route("/Autodiscover/Autodiscover.xml", outlook, methods=["POST"]),
    Route("/api/settings/mail-setup", mail_setup),
    Route("/api/settings/mail-setup/mobileconfig", mail_setup_mobileconfig),
    Route("/.well-known/suite/mobileconfig", phone_mobileconfig),
]
