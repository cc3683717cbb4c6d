"""The ``voip`` service of ``suite serve``: the media agent (echo test, voicemail) and, when
``coturn_enabled``, a coturn ``turnserver`` child process with REST-API (``use-auth-secret``) auth.

The signalling itself lives in the gateway (``/ws/calls``); this service attaches its agent to the
process's call hub (``hub_for(ctx)``) and detaches it when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from suite.service import Service
from suite.voip.ice import aiortc_ice_servers, ice_config
from suite.voip.turn import CoturnLoopback

if TYPE_CHECKING:
    from suite.voip.agent import MediaAgent

log = structlog.get_logger("suite.voip")

AGENT_ACCOUNT = "voicemail-agent"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def coturn_options(settings, secret: str, workdir: Path) -> list[tuple[str, str | None]]:
    """coturn options for our deployment: CoturnLoopback's set, bound to ``listen_host``.

    On a loopback listen address (tests, a laptop) loopback peers stay allowed; elsewhere they
    are refused (a TURN relay must not reach the server's own loopback services)."""
    base = CoturnLoopback(
        secret=secret,
        workdir=workdir,
        realm=settings.hostname,
        port=settings.coturn_port,
        min_port=settings.coturn_min_port,
        max_port=settings.coturn_max_port,
    )
    host = settings.listen_host
    loopback = host in LOOPBACK
    out: list[tuple[str, str | None]] = []
    for name, value in base.options():
        if name in ("listening-ip", "relay-ip"):
            if host not in ("0.0.0.0", "::"):
                out.append((name, "127.0.0.1" if host == "localhost" else host))
            continue
        if name == "allow-loopback-peers" and not loopback:
            continue
        out.append((name, value))
    if not loopback:
        out.append(("denied-peer-ip", "127.0.0.0-127.255.255.255"))
    return out


def write_config(path: Path, options: list[tuple[str, str | None]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the secret
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("# Written by suite.voip.service\n")
        fh.write("".join((n if v is None else f"{n}={v}") + "\n" for n, v in options))
    return path


class VoipService(Service):
    name = "voip"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.agent: MediaAgent | None = None
        self.coturn: asyncio.subprocess.Process | None = None
        self._refresh: asyncio.Task | None = None

    def agent_ice_servers(self):
        """Explicit ICE servers for every agent peer connection: our coturn (fresh credential) or none."""
        return aiortc_ice_servers(self.ctx.settings, AGENT_ACCOUNT)

    async def start(self) -> None:
        from suite.voip.hub import hub_for

        st = self.ctx.settings
        # A process may run the voip service without the gateway (``--only voip``, the call switch's
        # owner in a scaled topology): the hub must listen on the bus from the start, not on first
        # WebSocket as in the gateway.
        hub_for(self.ctx).ensure_started()
        if st.coturn_enabled and st.primary:  # one turnserver per installation (the workers share it)
            await self._start_coturn()
        try:
            from suite.voip.agent import MediaAgent
        except ImportError:  # aiortc missing: calls work, the echo test and voicemail do not
            log.warning("voip.agent_disabled", reason="aiortc is not installed")
            return
        agent = self.agent = MediaAgent(
            self.ctx, ice_servers=self.agent_ice_servers, max_seconds=float(st.voicemail_max_seconds)
        )
        await agent.refresh_domains()
        await asyncio.to_thread(agent.greeting, "")  # espeak-ng runs once, off the loop
        hub_for(self.ctx).attach_agent(agent)
        self._refresh = asyncio.get_running_loop().create_task(self._refresh_domains())

    async def _refresh_domains(self) -> None:
        while True:
            await asyncio.sleep(30)
            with contextlib.suppress(Exception):
                if self.agent is not None:
                    await self.agent.refresh_domains()

    async def _start_coturn(self) -> None:
        st = self.ctx.settings
        binary = shutil.which("turnserver")
        if binary is None:
            raise RuntimeError("coturn_enabled, but turnserver is not installed (Debian package coturn)")
        cfg = ice_config(st)
        workdir = Path(st.data_dir).resolve() / "voip" / "coturn"
        path = write_config(workdir / "turnserver.conf", coturn_options(st, cfg.turn_secret, workdir))
        with contextlib.suppress(FileNotFoundError):
            (workdir / "turnserver.pid").unlink()
        self.coturn = await asyncio.create_subprocess_exec(
            binary,
            "-c",
            str(path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not (workdir / "turnserver.pid").exists():
            if self.coturn.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"turnserver did not start (exit {self.coturn.returncode}); see {path}")
            await asyncio.sleep(0.05)
        log.info("coturn.started", port=st.coturn_port, pid=self.coturn.pid)

    async def stop(self) -> None:
        from suite.voip.hub import hub_for

        if self._refresh is not None:
            self._refresh.cancel()
        hub = hub_for(self.ctx)
        if self.agent is None:
            return await self._stop_coturn()
        await hub.end_side_calls()
        hub.attach_agent(None)
        await self._stop_coturn()

    async def _stop_coturn(self) -> None:
        if self.coturn is not None and self.coturn.returncode is None:
            self.coturn.terminate()
            try:
                await asyncio.wait_for(self.coturn.wait(), 10)
            except TimeoutError:
                self.coturn.kill()
                await self.coturn.wait()

    def addresses(self) -> list[str]:
        st = self.ctx.settings
        return [f"turn:{st.listen_host}:{st.coturn_port}"] if self.coturn is not None else []

    def health(self) -> dict:
        h = super().health()
        if self.coturn is not None:
            h["coturn"] = "running" if self.coturn.returncode is None else f"exited {self.coturn.returncode}"
        return h
