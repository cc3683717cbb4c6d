"""Inbound message authentication: SPF (RFC 7208), DKIM (RFC 6376), DMARC (RFC 7489),
reported as an Authentication-Results header value (RFC 8601).

pyspf and dkimpy are synchronous; they run in worker threads and reach DNS
through the event loop's ``dns.asyncresolver.Resolver`` (so tests and
production use the same configured nameservers).  Nothing here runs a
blocking lookup or a signature check on the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import authres
import authres.dmarc
import dkim
import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
import spf
from publicsuffixlist import PublicSuffixList

from suite.mail.smtp import spool
from suite.mail.smtp.server import InboundChecker, InboundVerdict

log = logging.getLogger("suite.mail.smtp.auth")

DEFAULT_MAX_DKIM_BYTES = 16 * 1024 * 1024
DNS_TIMEOUT = 10.0

_psl: PublicSuffixList | None = None


def organizational_domain(domain: str) -> str:
    """RFC 7489 §3.2 organizational domain (public suffix list, shipped with the package)."""
    global _psl
    if _psl is None:
        _psl = PublicSuffixList()
    domain = domain.lower().rstrip(".")
    return _psl.privatesuffix(domain) or domain


# --- DNS bridge for the synchronous libraries --------------------------------------------------
class ThreadDns:
    """Blocking DNS lookups for worker threads, executed by the async resolver on ``loop``."""

    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver,
        loop: asyncio.AbstractEventLoop,
        timeout: float = DNS_TIMEOUT,
    ) -> None:
        self.resolver = resolver
        self.loop = loop
        self.timeout = timeout

    def resolve(self, name: str, rdtype: str) -> dns.resolver.Answer | None:
        if self.loop.is_running() and _on_loop_thread(self.loop):
            raise RuntimeError("ThreadDns used on the event loop thread")
        coro = self.resolver.resolve(name, rdtype, lifetime=self.timeout, raise_on_no_answer=False, search=False)
        try:
            return asyncio.run_coroutine_threadsafe(coro, self.loop).result(self.timeout + 1)
        except dns.resolver.NXDOMAIN:
            return None

    # dkimpy ``dnsfunc(name, timeout=...)`` → TXT bytes or None
    def dkim_txt(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        qname = name.decode() if isinstance(name, bytes) else name
        try:
            answer = self.resolve(qname, "TXT")
        except (dns.exception.DNSException, TimeoutError) as e:
            raise dkim.DnsTimeoutError(str(e)) from e
        if answer is None or answer.rrset is None:
            return None
        for rdata in answer.rrset:
            return b"".join(rdata.strings)
        return None

    # pyspf ``DNSLookup(name, qtype, strict, timeout)`` → [((name, qtype), value), ...]
    def spf_lookup(
        self, name: str, qtype: str, strict: bool = True, timeout: float = 20
    ) -> list[tuple[tuple[str, str], Any]]:
        try:
            answer = self.resolve(name, qtype)
        except (dns.exception.Timeout, TimeoutError, dns.resolver.NoNameservers) as e:
            raise spf.TempError(f"DNS {e}") from e
        if answer is None or answer.rrset is None:
            return []
        out: list[tuple[tuple[str, str], Any]] = []
        for rdata in answer.rrset:
            if qtype in ("A", "AAAA"):
                out.append(((name, qtype), rdata.address))
            elif qtype == "MX":
                out.append(((name, qtype), (rdata.preference, rdata.exchange)))
            elif qtype == "PTR":
                out.append(((name, qtype), rdata.target.to_text(True)))
            elif qtype in ("TXT", "SPF"):
                out.append(((name, qtype), rdata.strings))
        return out


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


# pyspf looks its resolver up as the module global ``spf.DNSLookup``; install one
# dispatcher that uses the lookup bound to the current context (set per check).
_spf_lookup: contextvars.ContextVar[Callable[..., list] | None] = contextvars.ContextVar(
    "suite_spf_lookup", default=None
)
_original_spf_lookup = spf.DNSLookup


def _dispatch_spf_lookup(name: str, qtype: str, strict: bool = True, timeout: float = 20) -> list:
    fn = _spf_lookup.get()
    if fn is None:
        return _original_spf_lookup(name, qtype, strict, timeout)
    return fn(name, qtype, strict, timeout)


spf.DNSLookup = _dispatch_spf_lookup


# --- results ---------------------------------------------------------------------------------------
class DmarcDisposition(enum.Enum):
    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class DkimResult:
    result: str  # pass / fail / neutral / temperror / permerror / policy
    domain: str | None = None
    selector: str | None = None
    b: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class DmarcResult:
    result: str  # pass / fail / none / temperror / permerror
    from_domain: str | None = None
    policy: str | None = None  # p= / sp= that applies
    disposition: DmarcDisposition = DmarcDisposition.NONE


@dataclass(frozen=True, slots=True)
class MessageAuthentication:
    authserv_id: str
    spf: str
    spf_domain: str
    dkim: tuple[DkimResult, ...]
    dmarc: DmarcResult
    header_value: str = ""
    details: dict[str, str] = field(default_factory=dict)


# --- SPF -------------------------------------------------------------------------------------------
def check_spf_sync(client_ip: str, helo: str, mail_from: str, lookup: ThreadDns) -> tuple[str, str]:
    """RFC 7208 check_host(); returns (result, identity). Call in a worker thread."""
    identity = mail_from or f"postmaster@{helo}"  # RFC 7208 §2.4: null sender → HELO identity
    token = _spf_lookup.set(lookup.spf_lookup)
    try:
        result, _explanation = spf.check2(i=client_ip, s=identity, h=helo, timeout=lookup.timeout)
    except Exception as e:
        log.info("SPF check failed: %s", e)
        result = "permerror"
    finally:
        _spf_lookup.reset(token)
    return result, identity


# --- DKIM ------------------------------------------------------------------------------------------
def verify_dkim_sync(
    path: Path | bytes, lookup: ThreadDns, max_bytes: int = DEFAULT_MAX_DKIM_BYTES
) -> tuple[DkimResult, ...]:
    """Verify every DKIM-Signature of the message in ``path`` (or these bytes). Call in a worker thread."""
    block = spool.read_header_block(path)
    if b"dkim-signature:" not in block.raw.lower():
        return ()
    if (len(path) if isinstance(path, (bytes, bytearray)) else path.stat().st_size) > max_bytes:
        # RFC 8601 §2.7.1 "policy": not evaluated by local policy (size).
        return (DkimResult("policy", reason="message too large to verify"),)
    message = bytes(path) if isinstance(path, (bytes, bytearray)) else path.read_bytes()
    verifier = dkim.DKIM(message, timeout=int(lookup.timeout))
    sig_headers = [v for k, v in verifier.headers if k.lower() == b"dkim-signature"]
    results = []
    for idx, raw in enumerate(sig_headers):
        try:
            tags = dkim.util.parse_tag_value(raw)
        except Exception:
            results.append(DkimResult("permerror", reason="malformed signature"))
            continue
        domain = tags.get(b"d", b"").decode("ascii", "replace").lower() or None
        selector = tags.get(b"s", b"").decode("ascii", "replace") or None
        b_prefix = b"".join(tags.get(b"b", b"").split())[:8].decode("ascii", "replace") or None
        key_state: list[str] = []

        def dnsfunc(name: bytes, timeout: float = 5, key_state: list[str] = key_state) -> bytes | None:
            try:
                txt = lookup.dkim_txt(name, timeout)
            except dkim.DnsTimeoutError:
                key_state.append("temperror")
                raise
            if txt is None:
                key_state.append("nokey")
            return txt

        try:
            ok = verifier.verify(idx=idx, dnsfunc=dnsfunc)
        except dkim.ValidationError as e:
            # RFC 6376 §6.1.3: a body hash mismatch is a failed verification, not a permanent error.
            failed = "body hash mismatch" in str(e)
            reason = "body hash mismatch" if failed else re.sub(r"[^\x20-\x7e]|[\"\\\\]", "", str(e))[:60]
            results.append(
                DkimResult(
                    "fail" if failed else "permerror",
                    domain,
                    selector,
                    b_prefix,
                    reason=reason,
                )
            )
            continue
        if ok:
            results.append(DkimResult("pass", domain, selector, b_prefix))
        elif "temperror" in key_state:
            results.append(DkimResult("temperror", domain, selector, b_prefix))  # RFC 6376 §6.1.2
        elif "nokey" in key_state:
            results.append(
                DkimResult(
                    "permerror",
                    domain,
                    selector,
                    b_prefix,
                    reason="no key for signature",
                )
            )
        else:
            results.append(DkimResult("fail", domain, selector, b_prefix))
    return tuple(results)


# --- DMARC -----------------------------------------------------------------------------------------
def parse_dmarc_record(txt: str) -> dict[str, str] | None:
    """RFC 7489 §6.3 tag-value list; None if it is not a DMARC record."""
    tags: dict[str, str] = {}
    for part in txt.split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            return None
        tags.setdefault(key.strip().lower(), value.strip())
    if tags.get("v") != "DMARC1" or tags.get("p", "").lower() not in (
        "none",
        "quarantine",
        "reject",
    ):
        return None
    return tags


async def _dmarc_record(resolver: dns.asyncresolver.Resolver, domain: str) -> tuple[str, dict[str, str] | None]:
    """Returns ("ok"|"temperror", record) for ``_dmarc.<domain>``."""
    try:
        answer = await resolver.resolve(
            f"_dmarc.{domain}",
            "TXT",
            lifetime=DNS_TIMEOUT,
            raise_on_no_answer=False,
            search=False,
        )
    except dns.resolver.NXDOMAIN:
        return "ok", None
    except dns.exception.DNSException:
        return "temperror", None
    records = []
    for rdata in answer.rrset or []:
        text = b"".join(rdata.strings).decode("utf-8", "replace")
        if text.startswith("v=DMARC1"):
            records.append(parse_dmarc_record(text))
    valid = [r for r in records if r is not None]
    return "ok", (valid[0] if len(records) == 1 and valid else None)  # RFC 7489 §6.6.3: exactly one


def _aligned(a: str, b: str, mode: str) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if mode == "s":
        return a == b
    return organizational_domain(a) == organizational_domain(b)  # RFC 7489 §3.1 relaxed


async def evaluate_dmarc(
    resolver: dns.asyncresolver.Resolver,
    from_domain: str | None,
    spf_result: str,
    spf_domain: str,
    dkim_results: tuple[DkimResult, ...],
) -> DmarcResult:
    if not from_domain:
        return DmarcResult("permerror")
    status, record = await _dmarc_record(resolver, from_domain)
    org = organizational_domain(from_domain)
    at_org = False
    if status == "ok" and record is None and org != from_domain:
        status, record = await _dmarc_record(resolver, org)  # RFC 7489 §6.6.3 fallback
        at_org = True
    if status == "temperror":
        return DmarcResult("temperror", from_domain)
    if record is None:
        return DmarcResult("none", from_domain)
    policy = record["p"].lower()
    if at_org and "sp" in record:
        policy = record["sp"].lower()
    spf_ok = spf_result == "pass" and _aligned(spf_domain, from_domain, record.get("aspf", "r"))
    dkim_ok = any(
        r.result == "pass" and r.domain and _aligned(r.domain, from_domain, record.get("adkim", "r"))
        for r in dkim_results
    )
    if spf_ok or dkim_ok:
        return DmarcResult("pass", from_domain, policy)
    disposition = DmarcDisposition(policy) if policy in ("quarantine", "reject") else DmarcDisposition.NONE
    try:
        pct = int(record.get("pct", "100"))
    except ValueError:
        pct = 100
    if disposition is not DmarcDisposition.NONE and pct < 100 and random.randint(1, 100) > pct:
        # RFC 7489 §6.6.4: outside the sample, apply the next less strict policy.
        disposition = DmarcDisposition.QUARANTINE if disposition is DmarcDisposition.REJECT else DmarcDisposition.NONE
    return DmarcResult("fail", from_domain, policy, disposition)


# --- entry point -----------------------------------------------------------------------------------
def _from_domain(path: Path | bytes) -> str | None:
    try:
        headers = spool.read_header_block(path).parse()
        fields = headers.get_all("From") or []
        if len(fields) != 1:
            return None  # RFC 7489 §6.6.1: exactly one From
        addresses = fields[0].addresses
        if len(addresses) != 1 or not addresses[0].domain:
            return None
        return addresses[0].domain.lower()
    except Exception:
        return None


async def authenticate_message(
    spooled_path: Path | bytes,
    client_ip: str,
    helo: str,
    mail_from: str,
    resolver: dns.asyncresolver.Resolver,
    *,
    authserv_id: str = "localhost",
    max_dkim_bytes: int = DEFAULT_MAX_DKIM_BYTES,
) -> MessageAuthentication:
    """Run SPF, DKIM and DMARC for a spooled inbound message."""
    lookup = ThreadDns(resolver, asyncio.get_running_loop())
    spf_task = asyncio.to_thread(check_spf_sync, client_ip, helo, mail_from, lookup)
    dkim_task = asyncio.to_thread(verify_dkim_sync, spooled_path, lookup, max_dkim_bytes)
    from_task = asyncio.to_thread(_from_domain, spooled_path)
    (spf_result, spf_identity), dkim_results, from_domain = await asyncio.gather(spf_task, dkim_task, from_task)
    spf_domain = spf_identity.rpartition("@")[2].lower()
    dmarc = await evaluate_dmarc(resolver, from_domain, spf_result, spf_domain, dkim_results)

    results: list[Any] = [
        authres.SPFAuthenticationResult(
            result=spf_result,
            smtp_mailfrom=spf_identity if mail_from else None,
            smtp_helo=None if mail_from else helo,
        )
    ]
    if not dkim_results:
        results.append(authres.DKIMAuthenticationResult(result="none"))
    for r in dkim_results:
        results.append(
            authres.DKIMAuthenticationResult(
                result=r.result,
                reason=r.reason,
                header_d=r.domain,
                header_s=r.selector,
                properties=_b_prop(r.b),
            )
        )
    results.append(
        authres.dmarc.DMARCAuthenticationResult(result=dmarc.result, header_from=dmarc.from_domain, policy=dmarc.policy)
    )
    header = authres.AuthenticationResultsHeader(authserv_id=authserv_id, results=results)
    value = str(header).split(":", 1)[1].strip()
    return MessageAuthentication(authserv_id, spf_result, spf_domain, dkim_results, dmarc, value)


def _b_prop(b: str | None) -> list[Any] | None:
    if not b:
        return None
    return [authres.AuthenticationResultProperty(type="header", name="b", value=b)]


def make_inbound_checker(
    resolver: dns.asyncresolver.Resolver,
    *,
    authserv_id: str,
    max_dkim_bytes: int = DEFAULT_MAX_DKIM_BYTES,
) -> InboundChecker:
    """An ``InboundChecker`` for ``SmtpPolicies``: DMARC p=reject → 550 5.7.1, quarantine → Junk."""

    async def check(path: Path | bytes, client_ip: str, helo: str, mail_from: str) -> InboundVerdict:
        auth = await authenticate_message(
            path,
            client_ip,
            helo,
            mail_from,
            resolver,
            authserv_id=authserv_id,
            max_dkim_bytes=max_dkim_bytes,
        )
        disposition = auth.dmarc.disposition
        return InboundVerdict(
            authentication_results=auth.header_value,
            reject=disposition is DmarcDisposition.REJECT,
            junk=disposition is DmarcDisposition.QUARANTINE,
        )

    return check
