"""The ``suite`` command. Every failure is one line on stderr and exit status 1 — never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import re
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

EXIT_OK, EXIT_FAIL = 0, 1


class CliError(Exception):
    """A failure to report as one line."""


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*", text.lower())
    if not m:
        raise CliError(f"not a size: {text!r} (examples: 500M, 5G, 1048576)")
    n = float(m.group(1)) * 1024 ** " kmgt".index(m.group(2) or " ")
    return int(n)


def fmt_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def read_password(args: argparse.Namespace, *, confirm: bool = True) -> str:
    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for the password; use --password-stdin")
    pw = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Again: ") != pw:
        raise CliError("the two passwords differ")
    return pw


def settings():
    from pydantic import ValidationError

    from suite.config import Settings

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ())) or "config"
        raise CliError(f"bad configuration: {where}: {first.get('msg')}") from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML
        raise CliError(f"bad configuration: {exc}") from None


async def _context(need_schema: bool = True):
    from suite.context import open_context
    from suite.storage import db

    st = settings()
    ctx = await open_context(st, start_bus=False)
    if need_schema:
        try:
            rev = await db.current_revision(ctx.engine)
        except Exception as exc:
            await ctx.close()
            raise CliError(f"cannot open the database {_safe_url(st.db_url)}: {exc.__class__.__name__}") from None
        if rev != db.head_revision():
            await ctx.close()
            raise CliError("the database is not initialised or not up to date; run `suite init` first")
    return ctx


def _safe_url(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def with_ctx(fn: Callable) -> Callable[[argparse.Namespace], Awaitable[int]]:
    async def run(args: argparse.Namespace) -> int:
        ctx = await _context()
        try:
            return await fn(ctx, args) or EXIT_OK
        finally:
            await ctx.close()

    return run


# ---------------------------------------------------------------- init / doctor
async def ensure_initialised(st) -> list[str]:
    """Create the data dir, migrate the schema, make a TLS certificate if none is configured."""
    from suite.storage import db
    from suite.tls import make_self_signed

    done = []
    st.data_dir.mkdir(parents=True, exist_ok=True)
    for sub in (st.blob_dir, st.spool_dir):
        sub.mkdir(parents=True, exist_ok=True)
    engine = db.make_engine(st.db_url)
    try:
        before = await db.current_revision(engine)
        await db.migrate(engine)
        after = await db.current_revision(engine)
    except Exception as exc:
        raise CliError(f"cannot migrate the database {_safe_url(st.db_url)}: {exc}".splitlines()[0]) from None
    finally:
        await engine.dispose()
    if before != after:
        done.append(f"database migrated to {after}")
    if st.tls_cert or st.tls_key:
        if not (st.cert_path.exists() and st.key_path.exists()):
            raise CliError(f"configured TLS files not found: {st.cert_path}, {st.key_path}")
    elif not st.cert_path.exists():
        make_self_signed(st.cert_path, st.key_path, st.hostname)
        done.append(f"self-signed TLS certificate for {st.hostname} in {st.cert_path.parent}")
    return done


async def cmd_init(args) -> int:
    st = settings()
    for line in await ensure_initialised(st) or ["already initialised"]:
        print(line)
    print(f"data dir: {st.data_dir.resolve()}")
    return EXIT_OK


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


async def cmd_doctor(args) -> int:
    from suite.storage import db
    from suite.tls import describe

    failures = 0

    def report(ok: bool, what: str) -> None:
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {what}")

    st = settings()
    report(True, f"configuration loaded (data dir {st.data_dir.resolve()})")
    report(os.access(st.data_dir, os.W_OK), f"data dir writable: {st.data_dir}")
    engine = db.make_engine(st.db_url)
    try:
        rev = await db.current_revision(engine)
        report(True, f"database reachable: {_safe_url(st.db_url)}")
        head = db.head_revision()
        report(
            rev == head,
            f"schema at {rev or 'nothing'} (code expects {head})" + ("" if rev == head else "; run `suite init`"),
        )
    except Exception as exc:
        report(
            False,
            f"database {_safe_url(st.db_url)}: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        )
    finally:
        await engine.dispose()
    for name in ("smtp", "submission", "submissions", "imap", "imaps", "managesieve", "http"):
        port = getattr(st, f"{name}_port")
        free = _port_free(st.listen_host, port)
        report(free, f"port {name} {st.listen_host}:{port} " + ("free" if free else "in use (is suite serve running?)"))
    try:
        report(st.key_path.exists(), f"TLS certificate: {describe(st.cert_path)}")
    except Exception as exc:
        report(False, f"TLS certificate {st.cert_path}: {exc.__class__.__name__}; run `suite init`")
    return EXIT_FAIL if failures else EXIT_OK


# ---------------------------------------------------------------- domains
@with_ctx
async def cmd_domain_add(ctx, args):
    from suite.mail.queue import dkim

    d = await ctx.accounts.add_domain(args.name)
    await dkim.ensure_keys(ctx, d.name)
    print(f"domain {d.name} added (DKIM keys made; `suite dns {d.name}` shows the records to publish)")


# ---------------------------------------------------------------- mail transport
@with_ctx
async def cmd_dns(ctx, args):
    from suite.accounts.store import normalize_domain
    from suite.mail.queue import dnsrecords

    name = normalize_domain(args.domain)
    if not await ctx.accounts.is_local_domain(name):
        raise CliError(f"unknown domain {name}; add it with `suite domain add {name}`")
    if ctx.settings.hostname in ("localhost", "") or "." not in ctx.settings.hostname:
        print(f"; warning: hostname is {ctx.settings.hostname!r}; set SUITE_HOSTNAME to the server's public name")
    for rec in await dnsrecords.records(ctx, name):
        print(rec.zone_line())


@with_ctx
async def cmd_queue_list(ctx, args):
    import time as _time

    from suite.mail.queue import queue

    entries = await queue.list_queue(ctx)
    if not entries:
        print("queue is empty")
    now = _time.time()
    for e in entries:
        print(f"{e.id}\t{fmt_size(e.size)}\tage {_age(now - e.created_at)}\tfrom <{e.mail_from}>")
        for r in e.recipients:
            due = "" if r.status != "queued" else f", next try in {_age(max(0.0, r.next_attempt_at - now))}"
            reply = f"\t{r.last_reply}" if r.last_reply else ""
            print(f"\t<{r.address}>\t{r.status}, {r.attempts} attempt(s){due}{reply}")


def _age(seconds: float) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= n:
            return f"{seconds / n:.1f}{unit}"
    return f"{seconds:.0f}s"


@with_ctx
async def cmd_queue_retry(ctx, args):
    from suite.mail.queue import queue

    n = await queue.retry_now(ctx, args.id)
    if args.id is not None and n == 0:
        raise CliError(f"no queued recipients for message {args.id}")
    print(f"{n} recipient(s) due now")


@with_ctx
async def cmd_queue_delete(ctx, args):
    from suite.mail.queue import queue

    if not await queue.delete_message(ctx, args.id):
        raise CliError(f"no queued message {args.id}")
    print(f"message {args.id} deleted from the queue (no bounce sent)")


@with_ctx
async def cmd_domain_list(ctx, args):
    for d in await ctx.accounts.list_domains():
        print(f"{d.name}\t{d.accounts} account(s)")


@with_ctx
async def cmd_domain_remove(ctx, args):
    await ctx.accounts.remove_domain(args.name)
    print(f"domain {args.name} removed")


# ---------------------------------------------------------------- users
@with_ctx
async def cmd_user_add(ctx, args):
    pw = read_password(args)
    quota = parse_size(args.quota) if args.quota else None
    a = await ctx.accounts.add_account(
        args.address, pw, display_name=args.name or "", quota_bytes=quota, is_admin=args.admin
    )
    print(f"user {a.address} added (quota {fmt_size(a.quota_bytes)}{', admin' if a.is_admin else ''})")


@with_ctx
async def cmd_user_list(ctx, args):
    for a in await ctx.accounts.list_accounts(args.domain):
        flags = ",".join(x for x, on in (("admin", a.is_admin), ("disabled", a.disabled)) if on) or "-"
        print(f"{a.address}\t{fmt_size(a.used_bytes)} of {fmt_size(a.quota_bytes)}\t{flags}\t{a.display_name}")


@with_ctx
async def cmd_user_passwd(ctx, args):
    await ctx.accounts.require(args.address)
    await ctx.accounts.set_password(args.address, read_password(args))
    print(f"password of {args.address} changed")


@with_ctx
async def cmd_user_remove(ctx, args):
    await ctx.accounts.remove_account(args.address)
    print(f"user {args.address} removed")


@with_ctx
async def cmd_user_quota(ctx, args):
    if args.size is None:
        a = await ctx.accounts.require(args.address)
    else:
        a = await ctx.accounts.set_quota(args.address, parse_size(args.size))
    print(f"{a.address}: {fmt_size(a.used_bytes)} used of {fmt_size(a.quota_bytes)}")


@with_ctx
async def cmd_user_big_attachments(ctx, args):
    a = await ctx.accounts.require(args.address)
    if args.state is not None:
        await ctx.accounts.set_big_attachment_links(a.address, args.state == "on")
    on = await ctx.accounts.big_attachment_links(a.id)
    limit = fmt_size(ctx.settings.big_attachment_bytes)
    print(f"{a.address}: attachments over {limit} sent through SMTP become share links: {'on' if on else 'off'}")


# ---------------------------------------------------------------- aliases
@with_ctx
async def cmd_alias_add(ctx, args):
    a = await ctx.accounts.add_alias(args.alias, args.target)
    print(f"alias {a.address} → {a.target}")


@with_ctx
async def cmd_alias_list(ctx, args):
    for a in await ctx.accounts.list_aliases(args.domain):
        print(f"{a.address}\t{a.target}")


@with_ctx
async def cmd_alias_remove(ctx, args):
    await ctx.accounts.remove_alias(args.alias)
    print(f"alias {args.alias} removed")


# ---------------------------------------------------------------- app passwords
@with_ctx
async def cmd_app_add(ctx, args):
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    info, secret = await ctx.accounts.add_app_password(args.address, args.label, scopes)
    print(f"app password {info.id} ({info.label}, scopes {','.join(info.scopes)}); shown once:")
    print(secret)


@with_ctx
async def cmd_app_list(ctx, args):
    import datetime as dt

    def when(t):
        return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M") if t else "never"

    for a in await ctx.accounts.list_app_passwords(args.address):
        print(
            f"{a.id}\t{a.label}\t{','.join(a.scopes)}\tcreated {when(a.created_at)}\tlast used {when(a.last_used_at)}"
        )


@with_ctx
async def cmd_app_revoke(ctx, args):
    await ctx.accounts.revoke_app_password(args.address, args.id)
    print(f"app password {args.id} of {args.address} revoked")


# ---------------------------------------------------------------- share links
def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if not m:
        raise CliError(f"not a duration: {text!r} (examples: 90m, 12h, 7d, 2w)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]


def _files(ctx):
    from suite.files.service import Files

    return Files(ctx)


@with_ctx
async def cmd_share_create(ctx, args):
    import time

    from suite.files.names import BadName
    from suite.files.tree import FilesError

    acct = await ctx.accounts.require(args.user)
    files = _files(ctx)
    try:
        node = await files.tree.resolve(acct.id, args.path)
    except BadName as exc:
        raise CliError(f"bad path {args.path!r}: {exc}") from None
    if node is None:
        raise CliError(f"{acct.address} has no {args.path}")
    password = read_password(args, confirm=False) if args.password_stdin else None
    expires = time.time() + parse_duration(args.expires) if args.expires else None
    try:
        _, token = await files.shares.create(
            acct.id,
            node.id,
            kind="drop" if args.drop else "download",
            password=password,
            expires_at=expires,
            max_uses=args.max_downloads,
        )
    except FilesError as exc:
        raise CliError(str(exc)) from None
    from suite.files.shares import link_url

    print(link_url(ctx.settings.base_url, token))


@with_ctx
async def cmd_share_list(ctx, args):
    import datetime as dt

    def when(t):
        return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M") if t else "never"

    acct = await ctx.accounts.require(args.user)
    for info, path in await _files(ctx).shares.list(acct.id):
        state = "revoked" if info.revoked_at else ("active" if info.active else "inactive")
        limit = f"{info.uses}/{info.max_uses}" if info.max_uses else f"{info.uses}"
        pw = "\tpassword" if info.has_password else ""
        print(f"{info.id}\t{info.kind}\t{path}\t{state}\tuses {limit}\texpires {when(info.expires_at)}{pw}")


@with_ctx
async def cmd_share_revoke(ctx, args):
    from suite.files.shares import ShareError

    files = _files(ctx)
    try:
        if args.token.isdigit() and args.user:
            acct = await ctx.accounts.require(args.user)
            await files.shares.revoke_id(acct.id, int(args.token))
        else:
            await files.shares.revoke(args.token.rsplit("/", 1)[-1])
    except ShareError as exc:
        raise CliError(str(exc)) from None
    print("share link revoked")


# ---------------------------------------------------------------- backup / restore / export
async def cmd_backup(args) -> int:
    from suite.ops.backup import BackupError, backup

    ctx = await _context()
    try:
        m = await backup(ctx.engine, ctx.blobs.backend, Path(args.path))
    except BackupError as exc:
        raise CliError(str(exc)) from None
    finally:
        await ctx.close()
    rows = sum(m["tables"].values())
    print(f"backup of {rows} rows in {len(m['tables'])} tables and {m['blobs']} blobs ({fmt_size(m['blob_bytes'])})")
    print(f"written to {args.path} (schema {m['revision']})")
    return EXIT_OK


async def cmd_restore(args) -> int:
    from suite.context import open_context
    from suite.ops.backup import BackupError, restore

    st = settings()
    for sub in (st.data_dir, st.blob_dir, st.spool_dir):
        sub.mkdir(parents=True, exist_ok=True)
    ctx = await open_context(st, start_bus=False)
    try:
        m = await restore(ctx.engine, ctx.blobs.backend, Path(args.path))
    except BackupError as exc:
        raise CliError(str(exc)) from None
    finally:
        await ctx.close()
    done = await ensure_initialised(st)  # TLS certificate; the schema is at head already
    rows = sum(m["tables"].values())
    print(f"restored {rows} rows and {m['restored_blobs']} blobs into {_safe_url(st.db_url)}", *done, sep="\n")
    return EXIT_OK


@with_ctx
async def cmd_export(ctx, args):
    from suite.ops.export import ExportError, export_account

    try:
        s = await export_account(ctx, args.user, Path(args.path))
    except ExportError as exc:
        raise CliError(str(exc)) from None
    print(
        f"{s.messages} messages in {s.mailboxes} mailboxes (mbox) and {s.files} files ({fmt_size(s.file_bytes)}, zip)"
    )
    print(f"written to {args.path}")


# ---------------------------------------------------------------- serve
async def cmd_serve(args) -> int:
    from suite import logs, workers
    from suite.context import open_context
    from suite.metrics import MetricsServer
    from suite.service import REGISTRY, Runner

    if args.workers is not None:
        if args.workers < 1:
            raise CliError("--workers must be 1 or more")
        os.environ["SUITE_WORKERS"] = str(args.workers)
    st = settings()
    logs.setup(st.log_format)
    names = list(REGISTRY) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise CliError(f"unknown service {unknown[0]!r}; services are: {', '.join(REGISTRY)}")
    await ensure_initialised(st)
    worker = args.worker_index
    if worker is None and workers.worker_count(st.workers) > 1:
        return await _supervise(st, args.only, workers.worker_count(st.workers))
    if worker is not None:
        workers.die_with_parent()
    ctx = await open_context(st)
    runner = Runner(ctx, names)
    metrics_server = MetricsServer(ctx) if st.metrics_port else None
    reloader = None
    if ctx.network is not None:  # provider changes apply without a restart
        from suite.storage.network.reload import ProviderReloader

        reloader = ProviderReloader(ctx, settings)
    try:
        try:
            if reloader is not None:
                await reloader.start()
            await runner.start()
            if metrics_server is not None:
                await metrics_server.start()
        except OSError as exc:
            raise CliError(str(exc)) from None
        if worker is not None:
            ports = {k: v for svc in runner.services for k, v in svc.bound_ports().items()}
            if metrics_server is not None and metrics_server.port is not None:
                ports["metrics_port"] = metrics_server.port
            workers.report_ports(ports)
        if not worker:  # the address table once: by the only process, or by worker 0
            _print_addresses(runner, metrics_server, st)
        if not worker and await ctx.accounts.count_accounts() == 0:
            print(
                "No accounts yet. Create the first admin with:\n"
                "  suite domain add example.org\n"
                "  suite user add admin@example.org --admin",
                flush=True,
            )
        print("ready; SIGTERM or Ctrl-C stops", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        print("stopping", flush=True)
    finally:
        if metrics_server is not None:
            await metrics_server.stop()
        if reloader is not None:
            await reloader.stop()
        await runner.stop()
        await ctx.close()
    print("stopped", flush=True)
    return EXIT_OK


def _print_addresses(runner, metrics_server, st) -> None:
    for svc in runner.services:
        print(f"{svc.name:<10} {' '.join(svc.addresses())}", flush=True)
    if metrics_server is not None:
        print(f"{'metrics':<10} http://{st.listen_host}:{metrics_server.port}/metrics", flush=True)


async def _supervise(st, only: str | None, n: int) -> int:
    """`suite serve` with n > 1 workers: start them, restart those that die, stop them on a signal."""
    from suite.workers import Supervisor

    sup = Supervisor(st, n, only)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        starting = asyncio.ensure_future(sup.start())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
        else:
            try:
                starting.result()
            except RuntimeError as exc:
                raise CliError(str(exc)) from None
            print(f"{'workers':<10} {' '.join(map(str, sup.pids()))}", flush=True)
            print("ready; SIGTERM or Ctrl-C stops", flush=True)
            await stop.wait()
        print("stopping", flush=True)
    finally:
        await sup.stop()
    print("stopped", flush=True)
    return EXIT_OK


# ---------------------------------------------------------------- storage network
def _storage_net(st):
    from suite.storage.network import NetworkBackend

    if not st.storage.providers:
        raise CliError("no [[storage.providers]] configured (see docs/ARCHITECTURE.md, storage network)")
    return NetworkBackend.from_settings(st)


def _config_file(st) -> Path:
    from suite.config import _toml_path

    return _toml_path() or st.data_dir / "suite.toml"


async def cmd_storage_status(args) -> int:
    from suite.storage.network import ops

    st = settings()
    await (await _context()).close()  # the schema must be up to date
    net = _storage_net(st)
    try:
        rows, totals = await ops.status(net)
    finally:
        await net.close()
    print(f"{'provider':<16} {'state':<10} {'zone':<6} {'weight':>6} {'health':<22} {'latency':>8} {'objects':>9} "
          f"{'bytes':>14} {'bad':>5}")  # fmt: skip
    for r in rows:
        lat = f"{r.latency * 1000:.0f}ms" if r.latency is not None else "-"
        print(f"{r.name:<16} {r.state:<10} {r.zone or '-':<6} {r.weight:>6g} {r.health:<22} {lat:>8} "
              f"{r.objects:>9} {r.bytes:>14} {r.bad:>5}")  # fmt: skip
    print(f"replicas {st.storage.replicas}; under-replicated {totals['under_replicated']}; "
          f"repair queue {totals['repair_queue']}")  # fmt: skip
    if st.storage.migrate_from:
        print(f"migrating from {st.storage.migrate_from}: {totals['not_in_network']} blobs not in the network yet")
    return EXIT_OK


async def cmd_storage_verify(args) -> int:
    from suite.storage.network import ops

    st = settings()
    await (await _context()).close()  # the schema must be up to date
    net = _storage_net(st)
    try:
        checked, bad = await ops.verify(net, args.sample)
    finally:
        await net.close()
    print(f"checked {checked} copies, {bad} bad (queued for repair)")
    return EXIT_FAIL if bad else EXIT_OK


async def cmd_storage_migrate(args) -> int:
    from suite.storage.network import ops

    st = settings()
    source = args.source or st.storage.migrate_from
    if not source:
        raise CliError("nothing to migrate from: pass --from disk|s3 or set storage.migrate_from")
    st = st.model_copy(update={"storage": st.storage.model_copy(update={"migrate_from": source})})
    await (await _context()).close()  # the schema must be up to date
    net = _storage_net(st)
    try:
        copied, skipped, left = await ops.migrate(net)
    except OSError as exc:
        raise CliError(str(exc)) from None
    finally:
        await net.close()
    print(f"copied {copied} blobs into the network, {skipped} already there, {left} left")
    if left == 0 and st.blob_backend == "network":
        print("migration complete: every referenced blob is in the network; remove storage.migrate_from")
    return EXIT_OK


async def cmd_storage_provider(args) -> int:
    from suite.storage.network import ops

    st = settings()
    path = _config_file(st)
    try:
        if args.action == "add":
            if not args.endpoint:
                raise CliError("provider add needs --endpoint")
            entry = {"name": args.name, "endpoint": args.endpoint, "bucket": args.bucket or "suite"}
            entry.update({k: v for k, v in (("access_key", args.access_key), ("secret_key", args.secret_key),
                                             ("region", args.region), ("zone", args.zone)) if v})  # fmt: skip
            entry["weight"] = args.weight
            ops.provider_add(path, entry)
        elif args.action == "drain":
            ops.provider_set_state(path, args.name, "draining")
        else:
            await (await _context()).close()  # the schema must be up to date
            net = _storage_net(st)
            try:
                held = await ops.held(net, args.name)
            finally:
                await net.close()
            if held and not args.force:
                raise CliError(f"provider {args.name} still holds {held} copies; drain it first (or --force)")
            ops.provider_remove(path, args.name)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    await _announce_providers_changed(f"{args.action} {args.name}")
    print(f"provider {args.name}: {args.action} written to {path}; running processes apply it within seconds")
    return EXIT_OK


async def _announce_providers_changed(reason: str) -> None:
    """Tell running processes at once (PostgreSQL / Redis bus); with the in-process bus they notice
    the file change by themselves (``suite.storage.network.reload``)."""
    from suite.storage.bus import make_bus
    from suite.storage.events import ProvidersChanged

    bus = make_bus(settings())
    try:
        await bus.start()
        await bus.publish(ProvidersChanged(reason=reason))
    except Exception as exc:  # the file is written; the processes' file watch picks it up
        print(f"note: could not announce the change on the bus ({exc}); processes notice the file", file=sys.stderr)
    finally:
        with contextlib.suppress(Exception):
            await bus.stop()


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="suite", description="Suite: mail, calls and files in one install.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    sub.add_parser("init", help="create the data dir, migrate the database, make a TLS certificate").set_defaults(
        fn=cmd_init
    )
    sub.add_parser("doctor", help="check configuration, database, ports and TLS").set_defaults(fn=cmd_doctor)
    s = sub.add_parser("serve", help="run the services")
    s.add_argument("--only", help="comma-separated services to run (default: all)")
    s.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes sharing the ports (default: SUITE_WORKERS, else one per core; 1: no supervisor)",
    )
    # a worker of `suite serve --workers N` (started by the supervisor, suite/workers.py)
    s.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    s.set_defaults(fn=cmd_serve)

    d = sub.add_parser("domain", help="mail domains").add_subparsers(dest="sub", required=True, metavar="ACTION")
    x = d.add_parser("add")
    x.add_argument("name")
    x.set_defaults(fn=cmd_domain_add)
    x = d.add_parser("list")
    x.set_defaults(fn=cmd_domain_list)
    x = d.add_parser("remove")
    x.add_argument("name")
    x.set_defaults(fn=cmd_domain_remove)

    u = sub.add_parser("user", help="accounts").add_subparsers(dest="sub", required=True, metavar="ACTION")
    x = u.add_parser("add")
    x.add_argument("address")
    x.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    x.add_argument("--name", help="display name")
    x.add_argument("--quota", help="e.g. 5G (default from config)")
    x.add_argument("--admin", action="store_true")
    x.set_defaults(fn=cmd_user_add)
    x = u.add_parser("list")
    x.add_argument("--domain")
    x.set_defaults(fn=cmd_user_list)
    x = u.add_parser("passwd")
    x.add_argument("address")
    x.add_argument("--password-stdin", action="store_true")
    x.set_defaults(fn=cmd_user_passwd)
    x = u.add_parser("remove")
    x.add_argument("address")
    x.set_defaults(fn=cmd_user_remove)
    x = u.add_parser("quota")
    x.add_argument("address")
    x.add_argument("size", nargs="?", help="new quota, e.g. 10G")
    x.set_defaults(fn=cmd_user_quota)
    x = u.add_parser("big-attachments", help="mail sent through SMTP: big attachments become share links")
    x.add_argument("address")
    x.add_argument("state", nargs="?", choices=["on", "off"])
    x.set_defaults(fn=cmd_user_big_attachments)

    a = sub.add_parser("alias", help="address aliases (*@domain is the catch-all)").add_subparsers(
        dest="sub", required=True, metavar="ACTION"
    )
    x = a.add_parser("add")
    x.add_argument("alias")
    x.add_argument("target")
    x.set_defaults(fn=cmd_alias_add)
    x = a.add_parser("list")
    x.add_argument("--domain")
    x.set_defaults(fn=cmd_alias_list)
    x = a.add_parser("remove")
    x.add_argument("alias")
    x.set_defaults(fn=cmd_alias_remove)

    x = sub.add_parser("dns", help="DNS records to publish for a mail domain (MX, SPF, DKIM, DMARC, SRV)")
    x.add_argument("domain")
    x.set_defaults(fn=cmd_dns)
    q = sub.add_parser("queue", help="the outbound mail queue").add_subparsers(
        dest="sub", required=True, metavar="ACTION"
    )
    x = q.add_parser("list")
    x.set_defaults(fn=cmd_queue_list)
    x = q.add_parser("retry", help="try queued messages now")
    x.add_argument("id", type=int, nargs="?")
    x.set_defaults(fn=cmd_queue_retry)
    x = q.add_parser("delete", help="drop a message without a bounce")
    x.add_argument("id", type=int)
    x.set_defaults(fn=cmd_queue_delete)

    ap = sub.add_parser("app-password", help="passwords for mail clients and WebDAV").add_subparsers(
        dest="sub", required=True, metavar="ACTION"
    )
    x = ap.add_parser("add")
    x.add_argument("address")
    x.add_argument("--label", required=True)
    x.add_argument("--scopes", default="imap,smtp,dav,jmap", help="comma-separated: imap,smtp,dav,jmap (default all)")
    x.set_defaults(fn=cmd_app_add)
    x = ap.add_parser("list")
    x.add_argument("address")
    x.set_defaults(fn=cmd_app_list)
    x = ap.add_parser("revoke")
    x.add_argument("address")
    x.add_argument("id", type=int)
    x.set_defaults(fn=cmd_app_revoke)

    sh = sub.add_parser("share", help="public links to files and folders").add_subparsers(
        dest="sub", required=True, metavar="ACTION"
    )
    x = sh.add_parser("create")
    x.add_argument("path", help="file or folder of the user, e.g. /Docs/report.pdf")
    x.add_argument("--user", required=True)
    x.add_argument("--expires", help="e.g. 7d, 12h")
    x.add_argument("--max-downloads", type=int, help="uses before the link stops working")
    x.add_argument("--password-stdin", action="store_true", help="read a link password from stdin")
    x.add_argument("--drop", action="store_true", help="upload-only link into a folder (file drop)")
    x.set_defaults(fn=cmd_share_create)
    x = sh.add_parser("list")
    x.add_argument("--user", required=True)
    x.set_defaults(fn=cmd_share_list)
    x = sh.add_parser("revoke")
    x.add_argument("token", help="the token (or URL); or a share id with --user")
    x.add_argument("--user")
    x.set_defaults(fn=cmd_share_revoke)
    _ops_parsers(sub)

    sg = sub.add_parser("storage", help="the storage network (several S3 providers)").add_subparsers(
        dest="sub", required=True, metavar="ACTION"
    )
    sg.add_parser("status", help="per provider: state, health, latency, objects, bytes").set_defaults(
        fn=cmd_storage_status
    )
    x = sg.add_parser("verify", help="re-read copies and check their digests")
    x.add_argument("--sample", type=int, default=100)
    x.set_defaults(fn=cmd_storage_verify)
    x = sg.add_parser("migrate", help="copy a disk or single-S3 install's blobs into the network")
    x.add_argument("--from", dest="source", choices=["disk", "s3"], help="default: storage.migrate_from")
    x.set_defaults(fn=cmd_storage_migrate)
    x = sg.add_parser("provider", help="add, drain or remove a provider in the configuration file")
    x.add_argument("action", choices=["add", "drain", "remove"])
    x.add_argument("name")
    x.add_argument("--endpoint")
    x.add_argument("--bucket")
    x.add_argument("--access-key")
    x.add_argument("--secret-key")
    x.add_argument("--region")
    x.add_argument("--zone")
    x.add_argument("--weight", type=float, default=1.0)
    x.add_argument("--force", action="store_true", help="remove even if it still holds copies")
    x.set_defaults(fn=cmd_storage_provider)
    return p


def _ops_parsers(sub) -> None:
    x = sub.add_parser("backup", help="database + blobs into a new directory, while the services run")
    x.add_argument("path")
    x.set_defaults(fn=cmd_backup)
    x = sub.add_parser("restore", help="a backup into an empty database and blob store (this configuration's)")
    x.add_argument("path")
    x.set_defaults(fn=cmd_restore)
    x = sub.add_parser("export", help="one account's mail (mbox per mailbox) and files (zip)")
    x.add_argument("--user", required=True, metavar="ADDRESS")
    x.add_argument("path")
    x.set_defaults(fn=cmd_export)


def _run(coro) -> int:
    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)


def main(argv: list[str] | None = None) -> int:
    from suite.accounts.store import AccountError

    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits 2 with a usage line on bad syntax
    try:
        return _run(args.fn(args))
    except (CliError, AccountError) as exc:
        print(f"suite: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("suite: interrupted", file=sys.stderr)
    except Exception as exc:  # the promise: one line, never a traceback
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(f"suite: unexpected {exc.__class__.__name__}: {msg}", file=sys.stderr)
    return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
