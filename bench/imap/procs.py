"""Process helpers for the IMAP bench: free loopback ports, waiting for a port, CPU time of a process tree.

CPU time comes from ``/proc/<pid>/stat`` (proc(5)): utime, stime, cutime, cstime in clock ticks. For a tree
rooted at a server's master process, the sum over the live processes of ``utime + stime + cutime + cstime``
counts every process that ever ran in the tree exactly once, as long as exited children were reaped inside
the tree (their times then sit in the reaper's cutime/cstime). Dovecot's master reaps its imap, imap-login
and auth children, so short-lived per-connection processes are not lost.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(port: int, timeout: float, alive=lambda: True, host: str = "127.0.0.1") -> bool:
    """Wait until ``port`` accepts connections; give up after ``timeout`` s or when ``alive()`` turns false."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not alive():
            return False
        if port_open(port, host):
            return True
        time.sleep(0.1)
    return False


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) is in parentheses and may hold spaces: split after the last ')'.
    rest = raw[raw.rindex(")") + 2 :].split()
    return rest  # rest[0] is field 3 (state)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its parent's wait() does not count)."""
    f = _stat_fields(pid)
    return f is not None and f[0] not in ("Z", "X")


def _ppid_map() -> dict[int, int]:
    out: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        f = _stat_fields(int(entry.name))
        if f is not None:
            out[int(entry.name)] = int(f[1])  # field 4: ppid
    return out


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _ppid_map().items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu_seconds(root: int) -> tuple[float, int]:
    """(CPU seconds used so far by the tree rooted at ``root``, number of live processes in it)."""
    ticks, n = 0, 0
    for pid in process_tree(root):
        f = _stat_fields(pid)
        if f is None:  # exited between listing and reading
            continue
        # fields 14..17: utime stime cutime cstime (rest[0] is field 3)
        ticks += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
        n += 1
    return ticks / CLK_TCK, n


def host_cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine since boot, from the first line of /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def pid_listening_on(port: int) -> int | None:
    """The pid of a process holding a listening TCP socket on ``port`` (IPv4 or IPv6), if any is visible."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            parts = line.split()
            local, state, inode = parts[1], parts[3], parts[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(inode)
    if not inodes:
        return None
    targets = {f"socket:[{i}]" for i in inodes}
    found: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                try:
                    if os.readlink(fd.path) in targets:
                        found.append(int(entry.name))
                        break
                except OSError:
                    continue
        except OSError:
            continue
    if not found:
        return None
    # Several processes may share the socket (a master and its children): the topmost one is the root.
    pset = set(found)
    ppids = _ppid_map()
    for pid in sorted(found):
        if ppids.get(pid) not in pset:
            return pid
    return min(found)
