"""A private, throw-away Postfix for the SMTP bench: ``postfix -c <tmp>/conf start``.

Everything lives in a temp folder (config, queue_directory, data_directory, Maildirs, maillog): nothing from
/etc/postfix is used except Debian's shipped master.cf as the template. smtpd listens on 127.0.0.1:<port>,
no chroot, and delivers ``bench.test`` to Maildir through the ``virtual`` agent. Needs root (the master
starts as root and drops to the ``postfix`` user) and Debian's ``postfix`` package.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


class PostfixError(RuntimeError):
    pass


MASTER_CF = """\
{port}    inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    def __init__(self, port: int, users: list[str], *, max_size: int = 60_000_000) -> None:
        if shutil.which("postfix") is None:
            raise PostfixError("postfix not installed (Debian package postfix)")
        if os.geteuid() != 0:
            raise PostfixError("a private postfix instance needs root")
        self.port = port
        self.users = users
        self.max_size = max_size
        self.tmp = Path(tempfile.mkdtemp(prefix="suite-bench-postfix-"))
        self.tmp.chmod(0o755)  # the postfix user walks into it
        self.conf = self.tmp / "conf"
        self.maildir = self.tmp / "maildir"

    def _postfix(self, *args: str) -> str:
        r = subprocess.run(
            ["script", "-qec", f"postfix -c {self.conf} {' '.join(args)}", "/dev/null"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # a tty: postfix prints errors
        if r.returncode != 0:
            raise PostfixError(f"postfix {' '.join(args)}: {(r.stderr or r.stdout).strip()[-800:]}")
        return r.stdout

    def start(self) -> Postfix:
        pw = pwd.getpwnam("postfix")
        self.conf.mkdir()
        for d in ("queue", "data", "maildir"):
            (self.tmp / d).mkdir()
        os.chown(self.tmp / "data", pw.pw_uid, pw.pw_gid)
        os.chown(self.maildir, pw.pw_uid, pw.pw_gid)
        vmailbox = self.tmp / "vmailbox"
        vmailbox.write_text("".join(f"{u} {u.split('@')[0]}/\n" for u in self.users))
        domains = sorted({u.split("@")[1] for u in self.users})
        main = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.tmp / "queue"),
            "data_directory": str(self.tmp / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "postfix.bench.local",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_recipient_restrictions": "reject_unauth_destination",
            "virtual_mailbox_domains": " ".join(domains),
            "virtual_mailbox_base": str(self.maildir),
            "virtual_mailbox_maps": f"texthash:{vmailbox}",
            "virtual_uid_maps": f"static:{pw.pw_uid}",
            "virtual_gid_maps": f"static:{pw.pw_gid}",
            "virtual_mailbox_limit": "0",
            "message_size_limit": str(self.max_size),
            "default_process_limit": "200",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "maillog_file": str(self.tmp / "maillog"),
            "maillog_file_prefixes": str(self.tmp),
            "biff": "no",
            "smtputf8_enable": "yes",
            "alias_maps": "",
            "alias_database": "",
        }
        (self.conf / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
        (self.conf / "master.cf").write_text(MASTER_CF.format(port=f"127.0.0.1:{self.port}"))
        for f in ("dynamicmaps.cf",):
            src = Path("/etc/postfix") / f
            if src.exists():
                shutil.copy(src, self.conf / f)
        self._postfix("check")
        self._postfix("start")
        return self

    def master_pid(self) -> int:
        pid_file = self.tmp / "queue" / "pid" / "master.pid"
        for _ in range(100):
            if pid_file.exists():
                return int(pid_file.read_text().split()[0])
            time.sleep(0.05)
        raise PostfixError("postfix master did not write its pid file")

    def delivered(self) -> int:
        n = 0
        for user_dir in self.maildir.iterdir():
            new = user_dir / "new"
            if new.exists():
                n += sum(1 for _ in os.scandir(new))
        return n

    def clear_mail(self) -> None:
        for user_dir in self.maildir.iterdir():
            for sub in ("new", "cur", "tmp"):
                for f in (user_dir / sub).glob("*") if (user_dir / sub).exists() else ():
                    f.unlink(missing_ok=True)

    def stop(self) -> None:
        try:
            self._postfix("stop")
        except PostfixError:
            pass
        else:
            for _ in range(100):
                if not (self.tmp / "queue" / "pid" / "master.pid").exists():
                    break
                time.sleep(0.05)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Postfix:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    import socket
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        default_port = s.getsockname()[1]
    p = Postfix(int(sys.argv[1]) if len(sys.argv) > 1 else default_port, ["user1@bench.test"])
    with p:
        print(f"postfix on 127.0.0.1:{p.port}, files in {p.tmp}; Enter stops")
        input()
