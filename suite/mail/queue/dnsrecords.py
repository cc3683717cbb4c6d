"""The DNS records a domain should publish for Suite (printed by ``suite dns DOMAIN``)."""

from __future__ import annotations

from dataclasses import dataclass

from suite.accounts.store import normalize_domain
from suite.mail.queue import dkim

STANDARD_PORTS = {"imaps": 993, "submission": 587, "submissions": 465}


@dataclass(frozen=True, slots=True)
class DnsRecord:
    name: str  # fully qualified, with the trailing dot
    rdtype: str
    value: str  # zone-file presentation (TXT: the text, unquoted)
    comment: str = ""

    def zone_line(self) -> str:
        value = self.value
        if self.rdtype == "TXT":
            # RFC 1035 §3.3.14: character-strings of at most 255 octets; long TXT values are split.
            chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
            value = " ".join(f'"{c}"' for c in chunks)
        line = f"{self.name:<40} 3600 IN {self.rdtype:<5} {value}"
        return f"{line}  ; {self.comment}" if self.comment else line


async def records(ctx, domain: str) -> list[DnsRecord]:
    """MX, SPF, both DKIM keys, DMARC, autoconfig/autodiscover and the RFC 6186 / RFC 8314 SRV records."""
    st = ctx.settings
    domain = normalize_domain(domain)
    host = st.hostname.rstrip(".") + "."
    d = domain + "."
    keys = await dkim.ensure_keys(ctx, domain)
    out = [
        DnsRecord(d, "MX", f"10 {host}", "RFC 5321 §5.1"),
        DnsRecord(d, "TXT", "v=spf1 mx -all", "SPF, RFC 7208: only the MX hosts send for the domain"),
    ]
    for key in keys:
        out.append(DnsRecord(key.dns_name() + ".", "TXT", key.dns_txt(), f"DKIM {key.algorithm}, RFC 6376/8463"))
    out.append(
        DnsRecord(
            f"_dmarc.{d}",
            "TXT",
            f"v=DMARC1; p=quarantine; adkim=s; aspf=s; rua=mailto:postmaster@{domain}",
            "DMARC, RFC 7489",
        )
    )
    out.append(DnsRecord(f"autoconfig.{d}", "CNAME", host, "Thunderbird autoconfig"))
    out.append(DnsRecord(f"autodiscover.{d}", "CNAME", host, "Outlook autodiscover"))
    ports = {"imaps": st.imaps_port, "submission": st.submission_port, "submissions": st.submissions_port}
    for service, standard in STANDARD_PORTS.items():
        note = "RFC 6186" if service != "submissions" else "RFC 8314 §5.1"
        if ports[service] != standard:
            note += f"; Suite listens on {ports[service]}: forward {standard} to it"
        out.append(DnsRecord(f"_{service}._tcp.{d}", "SRV", f"0 1 {standard} {host}", note))
    out.append(DnsRecord(f"_sieve._tcp.{d}", "SRV", f"0 1 {st.managesieve_port} {host}", "ManageSieve, RFC 5804 §1.8"))
    out.append(DnsRecord(f"_autodiscover._tcp.{d}", "SRV", f"0 1 443 {host}", "Outlook autodiscover"))
    # RFC 6186 §4 / RFC 8314 §5.1: "." says the plaintext service is not offered on the well-known port.
    out.append(DnsRecord(f"_imap._tcp.{d}", "SRV", "0 0 0 .", "plaintext IMAP not offered (RFC 8314)"))
    for pop in ("pop3", "pop3s"):  # RFC 6186 §4: "." = the service is not offered here
        out.append(DnsRecord(f"_{pop}._tcp.{d}", "SRV", "0 0 0 .", "POP3 not offered"))
    return out
