"""Configuration: ``SUITE_*`` environment variables, then an optional TOML file, then defaults.

Precedence (highest first): init arguments, environment (``SUITE_HTTP_PORT=9000``), the TOML file named
by ``SUITE_CONFIG`` (or ``<data_dir>/suite.toml`` when it exists), defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _toml_path() -> Path | None:
    explicit = os.environ.get("SUITE_CONFIG")
    if explicit:
        return Path(explicit)
    data_dir = Path(os.environ.get("SUITE_DATA_DIR", "./data"))
    candidate = data_dir / "suite.toml"
    return candidate if candidate.exists() else None


class ProviderSettings(BaseModel):
    """One S3 provider of the storage network (``[[storage.providers]]`` in the TOML file)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    endpoint: str = ""  # empty: AWS
    bucket: str = "suite"
    access_key: str = ""  # empty: the usual AWS credential chain
    secret_key: str = ""
    region: str = "us-east-1"
    weight: float = Field(default=1.0, gt=0)  # ~ capacity
    zone: str = ""  # e.g. a country or jurisdiction code
    # active: placed on; draining: everything moves off it (still read); read-only: read, never written
    state: Literal["active", "draining", "read-only"] = "active"


class StorageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    providers: list[ProviderSettings] = []
    replicas: int = Field(default=2, ge=1)
    exclude_zones: list[str] = []
    # Bytes per second the repair/rebalance loop may copy (0: unlimited).
    bandwidth_limit: int = 50 * 1024**2
    repair_interval: float = 60.0  # seconds between sweeps of the repair/rebalance loop
    scrub_sample: int = 100  # copies re-read and checked per sweep
    read_timeout: float = 10.0  # seconds without a byte before a read moves to the next copy
    # Downloads and share GETs answered with a presigned redirect to a provider holding the blob.
    redirect_downloads: bool = False
    # Migration into the network: the backend the blobs come from ("disk" or "s3", configured as
    # before). While set, a blob no provider holds is read from it and the repair loop copies it in;
    # ``suite storage migrate`` says when nothing is left, then the setting is removed.
    migrate_from: Literal["", "disk", "s3"] = ""
    redirect_ttl: int = 300

    @model_validator(mode="after")
    def _unique_names(self) -> StorageSettings:
        names = [p.name for p in self.providers]
        if len(names) != len(set(names)):
            raise ValueError("storage.providers: names must be unique")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SUITE_", extra="forbid", env_nested_delimiter="__")

    data_dir: Path = Path("./data")
    database_url: str = ""  # default: sqlite in the data dir
    hostname: str = "localhost"
    # Where the web app is reached from outside (share links, autoconfig). Default derives from http port.
    public_url: str = ""

    listen_host: str = "127.0.0.1"
    smtp_port: int = 2525
    submission_port: int = 2587
    submissions_port: int = 2465
    imap_port: int = 2143
    imaps_port: int = 2993
    managesieve_port: int = 4190  # RFC 5804 §1.8 (IANA "sieve"); unprivileged already
    http_port: int = 8080

    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Plaintext LOGIN/AUTH is refused before TLS (RFC 9051 §6.2.3 LOGINDISABLED); allow it from loopback
    # clients only when this is set (tests, local tools).
    allow_plaintext_loopback: bool = False

    # JMAP PushSubscription callbacks (RFC 8620 §7.2) go only to URLs starting with one of these
    # (e.g. "https://push.example.org/"); empty: push subscriptions are refused.
    jmap_push_allowed_urls: list[str] = []

    blob_backend: Literal["disk", "s3", "network"] = "disk"
    # S3 blob backend (blob_backend = "s3"): empty endpoint = AWS; empty keys = the usual AWS credential chain.
    s3_endpoint: str = ""
    s3_bucket: str = "suite"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_region: str = "us-east-1"
    s3_part_size: int = 8 * 1024**2  # >= 5 MiB; memory per upload is (concurrency + 1) x part size
    s3_max_concurrency: int = 4  # parts in flight per upload
    # The storage network (blob_backend = "network", suite.storage.network): several S3 providers.
    storage: StorageSettings = StorageSettings()
    # auto: postgres when the database is PostgreSQL, else in-process (memory); "socket": the broker of
    # `suite serve --workers` (set by the supervisor for its workers, with bus_fd).
    bus_backend: Literal["auto", "memory", "postgres", "redis", "socket"] = "auto"
    bus_fd: int = -1  # the worker's end of its socket pair to the supervisor's broker (bus_backend = "socket")
    # `suite serve` runs this many worker processes sharing the listening sockets (0: one per core;
    # 1: the services in the `suite serve` process itself, no supervisor).
    workers: int = Field(default=0, ge=0)
    # Set by the supervisor for its workers: listen with SO_REUSEPORT beside the other workers.
    reuse_port: bool = False
    # This process runs the once-per-installation duties (JMAP push sender, files housekeeping,
    # coturn); `suite serve --workers` leaves it on worker 0 only. With several `suite serve`
    # processes on one database, turn it off on all but one (as call_switch_owner).
    primary: bool = True
    # Set by `suite serve --workers`: the Unix socket the primary worker's gateway also listens on;
    # the other workers relay meeting WebSockets to it (a room's media lives in one process).
    primary_socket: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"

    default_quota_bytes: int = 5 * 1024**3
    session_lifetime_seconds: int = 14 * 24 * 3600
    # Login rate limiting: failures counted in a sliding window, per address and per client IP.
    login_window_seconds: int = 15 * 60
    login_max_failures_per_address: int = 10
    login_max_failures_per_ip: int = 30
    log_format: Literal["console", "json"] = "console"
    # /metrics, /healthz, /readyz on a port of their own (0 = off) for processes without the gateway.
    metrics_port: int = 0
    # Calls (suite.voip): ICE servers handed to browsers, ring timeout, voicemail, an optional local coturn.
    turn_secret: str = ""  # coturn static-auth-secret; empty + coturn_enabled: generated in <data_dir>/voip/
    turn_urls: list[str] = []  # e.g. ["turn:turn.example.org:3478?transport=udp"]; default with coturn: our own
    stun_urls: list[str] = []
    turn_ttl: int = 600  # lifetime of the TURN REST credentials given out by /api/calls/ice (seconds)
    call_ring_timeout: float = 30.0
    # Several processes: exactly one runs the call switch; the others forward to it over the bus.
    call_switch_owner: bool = True
    voicemail_enabled: bool = True
    voicemail_max_seconds: int = 120
    meeting_max_participants: int = Field(default=8, ge=2, le=50)  # per room, Python SFU (suite/voip/sfu.py)
    # The media engine of meetings: "python" (suite/voip/sfu.py, in this process) or "janus" (Janus's
    # VideoRoom, suite/voip/janus.py): rooms spread over janus_urls (ws://host:8188) by rendezvous hash.
    sfu_engine: Literal["python", "janus"] = "python"
    janus_urls: list[str] = []
    # Janus's VideoRoom recording folder, the same path on the Janus host and here (Janus on this
    # machine or a shared mount): meetings on Janus record into it, then janus-pp-rec (Debian
    # janus-tools) makes the WebM. Unset: recording is refused on Janus.
    janus_rec_dir: Path | None = None
    coturn_enabled: bool = False  # `suite serve` runs turnserver (Debian coturn) on listen_host
    coturn_port: int = 3478
    coturn_min_port: int = 49160
    coturn_max_port: int = 49200

    # What an IMAP tagged OK to STORE (and a FETCH that sets \Seen) promises (docs/ARCHITECTURE.md):
    # "fsync": committed and fsynced, like every other write; "batched": committed (every session
    # sees it, a crash of Suite keeps it) and fsynced within a second — Dovecot's default for flags.
    imap_flag_durability: Literal["fsync", "batched"] = "fsync"
    # Seconds between re-reads of the selected mailbox while a session IDLEs: the safety net for a
    # change whose bus event never arrived (Dovecot's mailbox_idle_check_interval, also 30 s).
    imap_idle_check_interval: float = Field(default=30.0, gt=0)

    # Mail transport (suite.mail.smtp, suite.mail.queue).
    dns_nameservers: list[str] = []  # empty: the system's resolv.conf
    dns_port: int = 53
    smtp_max_message_size: int = 25 * 1024**2
    # Submission ports only: what an account with big attachment links on may send (a 30 MB file is
    # ~41 MB in base64); its attachments over big_attachment_bytes become links and the message then
    # queued or stored must fit smtp_max_message_size.
    smtp_max_submission_size: int = 100 * 1024**2
    smtp_max_recipients: int = 100  # RFC 5321 §4.5.3.1.8: at least 100
    smtp_max_connections_per_ip: int = 20
    smtp_max_connections_per_minute: int = 120  # new connections per client IP (or /64)
    # Bytes of message content that deliveries may hold in memory at once (parse, DKIM); larger waits.
    smtp_delivery_memory: int = 32 * 1024**2
    # Attachments larger than this become share links (folder "Mail attachments" of the sender's Files):
    # always in the web app, for SMTP submission when the account turns it on. Links expire after:
    big_attachment_bytes: int = 10 * 1024**2
    big_attachment_link_days: int = 30
    smtp_inbound_auth: bool = True  # SPF/DKIM/DMARC on the MX (Authentication-Results)
    smtp_outbound_port: int = 25  # port of remote MX hosts (tests use an unprivileged one)
    smarthost: str = ""  # host[:port] to relay all outbound mail through (port 587 by default)
    smarthost_user: str = ""
    smarthost_password: str = ""
    smarthost_tls_verify: bool = True
    # Seconds between delivery attempts; the last value repeats. Up to queue_max_age (RFC 5321 §4.5.4.1).
    queue_retry_schedule: list[float] = [60, 300, 900, 1800, 3600, 7200, 14400]
    queue_max_age: float = 5 * 24 * 3600
    queue_concurrency: int = 8  # SMTP transactions in flight
    queue_poll_seconds: float = 15.0  # also picks up `suite queue retry` from another process
    # Sieve filters (suite.mail.sieve): limits, and the HMAC key of SRS addresses for forwarded mail
    # (empty: a random key kept in <data_dir>/srs.key; processes sharing a database need the same one).
    sieve_max_script_size: int = 64 * 1024
    sieve_max_redirects: int = 5
    srs_secret: str = ""

    @model_validator(mode="after")
    def _janus_needs_urls(self) -> Settings:
        if self.sfu_engine == "janus" and not self.janus_urls:
            raise ValueError('sfu_engine = "janus" needs janus_urls (e.g. ["ws://127.0.0.1:8188"])')
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _toml_path()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # ----- derived values (computed, never stored) -----
    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'suite.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def cert_path(self) -> Path:
        return self.tls_cert or self.data_dir / "tls" / "cert.pem"

    @property
    def key_path(self) -> Path:
        return self.tls_key or self.data_dir / "tls" / "key.pem"

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.hostname}:{self.http_port}"


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)


__all__ = ["Settings", "load_settings", "Field"]
