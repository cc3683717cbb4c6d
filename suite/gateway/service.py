"""The gateway as a service: uvicorn (httptools) serving the Starlette app inside our event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import uvicorn

from suite.gateway.app import create_app, wrap
from suite.mail.jmap import http as jmap_http
from suite.service import Service
from suite.voip.invitations import InvitationMailer
from suite.voip.recording import RecordingStore


class _Server(uvicorn.Server):
    # `suite serve` owns the signals and stops every service in order; uvicorn must not take them.
    @contextlib.contextmanager
    def capture_signals(self):
        yield


def _unix_listener(path: str) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # left by a killed predecessor
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o600)
    sock.set_inheritable(True)
    return sock


class GatewayService(Service):
    name = "gateway"

    def __init__(
        self,
        ctx,
        *,
        meeting_invitations: InvitationMailer | None = None,
        meeting_recordings: RecordingStore | None = None,
    ) -> None:
        super().__init__(ctx)
        self.app = create_app(ctx)
        # the mail submission a planned meeting's invitations go through, the Files that take
        # recordings (suite/wiring.py)
        self.app.state.meeting_invitations = meeting_invitations
        self.app.state.meeting_recordings = meeting_recordings
        self._server: _Server | None = None
        self._task: asyncio.Task | None = None
        self.port = ctx.settings.http_port

    async def start(self) -> None:
        st = self.ctx.settings
        config = uvicorn.Config(
            wrap(self.app),
            host=st.listen_host,
            port=st.http_port,
            http="httptools",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=20,
        )
        # We bind the socket ourselves: uvicorn answers a bind error with sys.exit(), which would
        # tear down every service in the process instead of giving one clear error.
        sock = socket.socket(socket.AF_INET6 if ":" in st.listen_host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if st.reuse_port:  # beside the other workers of `suite serve --workers`
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        # Inherited by accepted sockets: uvicorn writes a response's head and body separately, and
        # without it the body waits ~40 ms for the client's delayed ACK (Nagle) on every request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((st.listen_host, st.http_port))
        except OSError as exc:
            sock.close()
            raise OSError(f"gateway cannot listen on {st.listen_host}:{st.http_port}: {exc.strerror}") from None
        sock.set_inheritable(True)
        self.port = sock.getsockname()[1]
        sockets = [sock]
        if st.primary_socket and st.primary:  # the other workers relay meeting sockets here
            sockets.append(_unix_listener(st.primary_socket))
        self.app.state.live.start()
        self._server = _Server(config)
        server = self._server
        self.ctx.metrics.watch_connections("http", lambda: len(server.server_state.connections))
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=sockets))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise OSError("gateway did not start")
            await asyncio.sleep(0.02)
        await jmap_http.start(self.app)

    def bound_ports(self) -> dict[str, int]:
        return {"http_port": self.port}

    async def stop(self) -> None:
        await jmap_http.stop(self.app)
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await self._task
        await self.app.state.live.stop()

    def addresses(self) -> list[str]:
        return [f"http://{self.ctx.settings.listen_host}:{self.port}/"]
