"""A Janus configuration for one local instance (Debian's ``janus``): only the VideoRoom plugin and
the WebSocket transport, listening on one address; used by the tests and bench/calls, and a start
for operators (production Janus is configured and run by its operator; Suite only needs its
WebSocket URL in ``janus_urls``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

JANUS_LIB = Path("/usr/lib/x86_64-linux-gnu/janus")


def _lib_dir() -> Path:
    env = os.environ.get("SUITE_JANUS_LIB")
    return Path(env) if env else JANUS_LIB


def default_event_loops(cores: int | None = None) -> int:
    """Janus's static event loops (``event_loops``): half the cores, at least one.

    A loop is a thread that owns its handles' sockets; handles share them instead of a thread each
    (Janus's default), which cost ~35 % more CPU per forwarded subscription in bench/calls/sfu.py.
    A packet forwarded to a handle on another loop wakes that loop's thread (a context switch a
    packet), so more loops than the cores Janus really gets cost CPU: on the 2-core box, where Janus
    shares the host with Suite (and in the bench with the clients), one loop forwarded a packet for
    13.6-16.7 µs of CPU and two for 16.3-20.1 µs (perf stat, ten people, four alternated pairs;
    21.7-22.1 vs 23.0-24.6 µs at six), with a third of the context switches. Operators of a host
    given to Janus set it to its cores."""
    return max(1, (cores if cores is not None else os.cpu_count() or 1) // 2)


def write_janus_config(
    folder: Path,
    *,
    ws_host: str = "127.0.0.1",
    ws_port: int = 8188,
    interface: str = "lo",
    rtp_ports: tuple[int, int] = (20000, 20999),
    debug_level: int = 3,
    event_loops: int | None = None,
) -> Path:
    """Write ``janus.jcfg`` and what it loads under ``folder``; returns the main file (``janus -C``).

    The plugin and transport folders hold links to the one plugin and the one transport we use, so
    Janus loads nothing else. ``interface`` is the only one ICE gathers on (``ice_enforce_list``).
    ``event_loops``: Janus's static media loops (default :func:`default_event_loops`).

    What Janus pays per forwarded packet here (perf on bench/calls/sfu.py, ten people: ~14-17 µs of
    CPU a packet on the 2-core VM): ~40 % the kernel's ``sendmsg`` (on loopback it also runs the
    receiver's UDP delivery; the Python SFU pays the same per packet), an eventfd write a packet
    (Janus wakes the subscriber's loop for each queued packet), a copy and the NACK buffer entry,
    SRTP (libsrtp2 on NSS). Settings that touch none of that stay at Janus's defaults: no event
    handlers or loggers are loaded, ``debug_level`` 3 logs nothing per packet, ``nice_debug`` off,
    recording only on request; ``twcc_period`` / ``nack_optimizations`` / ``no_media_timer`` act
    on feedback and timers, not per forwarded packet; ICE-lite and full-trickle change signalling
    only; audio levels (``audiolevel_event``) are the active speaker's input and stay."""
    lib = _lib_dir()
    if event_loops is None:
        event_loops = default_event_loops()
    (folder / "none").mkdir(parents=True, exist_ok=True)
    plugins, transports = folder / "plugins", folder / "transports"
    for d, name, src in (
        (plugins, "libjanus_videoroom.so", "plugins"),
        (transports, "libjanus_websockets.so", "transports"),
    ):
        d.mkdir(parents=True, exist_ok=True)
        link = d / name
        if not link.exists():
            link.symlink_to(lib / src / name)
    (folder / "janus.jcfg").write_text(
        f"""general: {{
  configs_folder = "{folder}"
  plugins_folder = "{plugins}"
  transports_folder = "{transports}"
  events_folder = "{folder / "none"}"
  loggers_folder = "{folder / "none"}"
  debug_level = {int(debug_level)}
  hide_dependencies = true
  event_loops = {event_loops}
}}
media: {{
  rtp_port_range = "{rtp_ports[0]}-{rtp_ports[1]}"
}}
nat: {{
  nice_debug = false
  ice_enforce_list = "{interface}"
  ignore_mdns = true
}}
plugins: {{
}}
transports: {{
}}
loggers: {{
  disable = "*"
}}
events: {{
}}
"""
    )
    (folder / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n")
    (folder / "janus.transport.websockets.jcfg").write_text(
        f"""general: {{
  json = "plain"
  ws = true
  ws_port = {int(ws_port)}
  ws_ip = "{ws_host}"
  wss = false
}}
admin: {{
  admin_ws = false
  admin_wss = false
}}
"""
    )
    return folder / "janus.jcfg"


class LocalJanus:
    """Run Debian's janus with :func:`write_janus_config` (tests, bench, development):
    ``with LocalJanus(tmp) as url: ...`` gives its WebSocket URL once it accepts connections."""

    def __init__(
        self,
        folder: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        interface: str = "lo",
        rtp_ports: tuple[int, int] = (20000, 20999),
        event_loops: int | None = None,
    ) -> None:
        self.folder, self.host, self.port, self.rtp_ports = folder, host, port, rtp_ports
        self.event_loops = event_loops
        self.interface = interface
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> str:
        exe = shutil.which("janus")
        if exe is None:
            raise FileNotFoundError("janus is not installed (Debian package janus)")
        if not self.port:
            with socket.socket() as s:
                s.bind((self.host, 0))
                self.port = s.getsockname()[1]
        cfg = write_janus_config(
            self.folder,
            ws_host=self.host,
            ws_port=self.port,
            interface=self.interface,
            rtp_ports=self.rtp_ports,
            event_loops=self.event_loops,
        )
        with open(self.folder / "janus.log", "wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [exe, "-C", str(cfg), "-F", str(self.folder)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"janus exited: {(self.folder / 'janus.log').read_text()[-2000:]}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return self.url
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"janus did not listen on {self.url} within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def add_dummy_interface(name: str = "janus0", address: str = "10.99.0.1/32") -> str:
    """Inside a private network namespace (root): an interface with one address for Janus's ICE,
    which skips loopback interfaces. A veth pair whose both ends stay in the namespace (it is up
    and has carrier; the kernel may lack the dummy driver); traffic to it never leaves."""
    for cmd in (
        ["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p"],
        ["ip", "addr", "add", address, "dev", name],
        ["ip", "link", "set", f"{name}p", "up"],
        ["ip", "link", "set", name, "up"],
    ):
        subprocess.run(cmd, check=True, capture_output=True)
    return name
