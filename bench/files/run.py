"""Files bench: a big file down and up through Suite's gateway, against nginx and dd, in one run.

    python bench/files/run.py                        # 1 GiB, 3 downloads + 2 uploads each, 20 concurrent uploads
    python bench/files/run.py --mib 256 --concurrent 4 --downloads 2 --uploads 1
    python bench/files/run.py --skip-concurrent --json /tmp/files-bench.json

One temp folder (/tmp/suite-bench-files-*) holds a file of random bytes, a Suite gateway
(``suite serve --only gateway``, SQLite, account and dav app password made with the CLI) and a private
nginx (Debian's, one worker; twice: ``sendfile on`` as Debian ships it and ``sendfile off; output_buffers 2 1m``,
its best here for one big file) whose root holds that same file. The file is uploaded to
Suite once (PUT, unmeasured warm-up), then:

- downloads: curl from nginx and from Suite (``GET /api/files/content/...``), alternated, ``--downloads``
  each after one unmeasured warm-up each (both copies in the page cache);
- uploads: ``dd if=/dev/zero bs=1M conv=fdatasync`` (the disk's durable write speed) alternated with
  ``curl -T`` to Suite (PUT, answered after the blob is fsynced and its row committed) and tus uploads by
  curl (POST, then PATCHes of ``--tus-chunks`` MiB — one PATCH, 50, 5 — on one kept-alive connection);
- ``--concurrent`` (20) uploads at once with curl -T while the server's RSS is sampled; the peak is
  VmHWM from /proc/<pid>/status (reset through /proc/<pid>/clear_refs first when allowed).

MB/s are 10^6 bytes per second: the size over curl's time_total (dd: over its wall time). Server CPU is
utime+stime of the server's process tree (/proc/<pid>/stat) over each transfer, per GiB moved; client CPU
is curl's (or dd's) own, from getrusage(RUSAGE_CHILDREN). Figures are printed, never asserted; exit code
1 only when nothing was measured. Everything started is stopped and the temp folder removed at the end
(also on Ctrl-C / SIGTERM) unless ``--keep``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.files.servers import (
    DEFAULT_SUITE_BIN,
    NGINX_VARIANTS,
    Nginx,
    ServerError,
    SuiteGateway,
    make_root,
    nginx_binary,
    remove_root,
)
from bench.imap.procs import tree_cpu_seconds
from bench.installed import suite_python

GiB = 1024**3
MB = 10**6
USER = "bench@bench.test"


@dataclass
class Sample:
    seconds: float
    nbytes: int
    server_cpu: float
    client_cpu: float
    ok: bool
    note: str = ""

    @property
    def mbs(self) -> float:
        return self.nbytes / self.seconds / MB if self.seconds > 0 else 0.0


@dataclass
class Row:
    label: str
    samples: list[Sample] = field(default_factory=list)
    cpu_label: str = "server"

    def good(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]

    def mbs(self) -> float | None:
        g = self.good()
        return statistics.median(s.mbs for s in g) if g else None

    def cpu_per_gib(self, which: str) -> float | None:
        g = self.good()
        if not g:
            return None
        total = sum(s.nbytes for s in g)
        cpu = sum(getattr(s, which) for s in g)
        return cpu / (total / GiB)

    def as_json(self) -> dict:
        return {
            "label": self.label,
            "mb_per_s": self.mbs(),
            "server_cpu_s_per_gib": self.cpu_per_gib("server_cpu"),
            "client_cpu_s_per_gib": self.cpu_per_gib("client_cpu"),
            "runs": [{"mb_per_s": s.mbs, "seconds": s.seconds, "ok": s.ok, "note": s.note} for s in self.samples],
        }


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def server_cpu(pid: int | None) -> float:
    return tree_cpu_seconds(pid)[0] if pid else 0.0


def curl(args: list[str], timeout: float) -> tuple[bool, dict[str, str], str]:
    """Run curl with a ``-w`` of key=value pairs; (ok, values, error)."""
    fmt = "code=%{http_code} size_down=%{size_download} size_up=%{size_upload} time=%{time_total}\n"
    try:
        r = subprocess.run(
            ["curl", "-sS", "--max-time", str(int(timeout)), "-w", fmt, *args],
            capture_output=True,
            text=True,
            timeout=timeout + 30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, {}, "curl did not finish"
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    vals = dict(kv.split("=", 1) for kv in last.split() if "=" in kv)
    ok = r.returncode == 0 and vals.get("code", "")[:1] == "2"
    return ok, vals, (r.stderr.strip() or r.stdout.strip()[:300]) if not ok else ""


def timed_curl(args: list[str], pid: int | None, nbytes: int, timeout: float, key: str) -> Sample:
    c0, s0 = children_cpu(), server_cpu(pid)
    ok, vals, err = curl(args, timeout)
    c1, s1 = children_cpu(), server_cpu(pid)
    moved = int(float(vals.get(key, 0) or 0))
    ok = ok and moved == nbytes
    t = float(vals.get("time", 0) or 0)
    return Sample(t, nbytes, s1 - s0, c1 - c0, ok, "" if ok else (err or f"HTTP {vals.get('code')}, {moved} bytes"))


def dd_sample(path: Path, mib: int, timeout: float) -> Sample:
    c0, t0 = children_cpu(), time.perf_counter()
    try:
        r = subprocess.run(
            ["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={mib}", "conv=fdatasync"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        ok, note = r.returncode == 0, r.stderr.strip().splitlines()[-1] if r.returncode else ""
    except subprocess.TimeoutExpired:
        ok, note = False, "dd did not finish"
    t, c1 = time.perf_counter() - t0, children_cpu()
    path.unlink(missing_ok=True)
    return Sample(t, mib * 1024**2, 0.0, c1 - c0, ok, note)


def kind_label(kind: str) -> str:
    chunk = kind.split()[1]
    return "tus (one PATCH)" if chunk == "whole" else f"tus ({chunk} MiB PATCHes)"


def tus_sample(
    suite: SuiteGateway, auth: list[str], src: Path, size: int, chunk: str, root: Path, timeout: float
) -> Sample:
    """One tus upload with curl: POST (unmeasured), then the file in PATCHes of ``chunk`` MiB ("whole":
    one PATCH) through ONE curl process on one kept-alive connection (``--next``), as a browser's
    tus-js-client sends them one after another. Timed from the first PATCH to the last 204."""
    tus_h = ["-H", "Tus-Resumable: 1.0.0"]
    meta = "filename " + base64.b64encode(f"tus-{time.monotonic_ns()}.bin".encode()).decode()
    r = subprocess.run(
        ["curl", "-sS", "-i", "-X", "POST", *auth, *tus_h, "-H", f"Upload-Length: {size}",
         "-H", f"Upload-Metadata: {meta}", f"{suite.url}/api/tus/"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    loc = next(
        (ln.split(":", 1)[1].strip() for ln in r.stdout.splitlines() if ln.lower().startswith("location:")), None
    )
    if not loc:
        return Sample(0, size, 0, 0, False, f"tus create failed: {r.stdout.splitlines()[:1]}")
    parts: list[tuple[int, Path]] = [(0, src)]
    tmp = root / "tus-parts"
    if chunk != "whole":
        step = int(chunk) * 1024**2
        tmp.mkdir(exist_ok=True)
        subprocess.run(["split", "-b", str(step), "-a", "4", "-d", str(src), f"{tmp}/p"], check=True)
        parts = [(n * step, p) for n, p in enumerate(sorted(tmp.iterdir()))]
    args: list[str] = []
    for off, part in parts:
        if args:
            args.append("--next")
        args += [*auth, *tus_h, "-sS", "-o", "/dev/null", "-w", "%{http_code}\\n", "-X", "PATCH",
                 "-H", f"Upload-Offset: {off}", "-H", "Content-Type: application/offset+octet-stream",
                 "-T", str(part), f"{suite.url}{loc}"]  # fmt: skip
    pid = suite.proc.pid
    c0, s0, t0 = children_cpu(), server_cpu(pid), time.perf_counter()
    r = subprocess.run(["curl", *args], capture_output=True, text=True, timeout=timeout + 30, check=False)
    t, c1, s1 = time.perf_counter() - t0, children_cpu(), server_cpu(pid)
    shutil.rmtree(tmp, ignore_errors=True)
    codes = r.stdout.split()
    ok = r.returncode == 0 and len(codes) == len(parts) and set(codes) == {"204"}
    return Sample(t, size, s1 - s0, c1 - c0, ok, "" if ok else f"curl {r.returncode}: {set(codes)} {r.stderr[:200]}")


def make_file(path: Path, size: int) -> None:
    block = 8 * 1024**2
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(block, left)
            f.write(os.urandom(n))
            left -= n


def rss_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_hwm(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # proc(5): reset the peak RSS (VmHWM)
        return True
    except OSError:
        return False


def fmt(x: float | None, spec: str = ".0f", none: str = "—") -> str:
    return none if x is None else format(x, spec)


def concurrent_uploads(suite: SuiteGateway, src: Path, n: int, size: int, timeout: float) -> dict:
    pid = suite.proc.pid
    base_rss = rss_kib(pid, "VmRSS")
    reset = reset_hwm(pid)
    fmt_w = "%{http_code} %{size_upload}\n"
    c0, s0, t0 = children_cpu(), server_cpu(pid), time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                "curl",
                "-sS",
                "--max-time",
                str(int(timeout)),
                "-o",
                "/dev/null",
                "-w",
                fmt_w,
                "-u",
                f"{USER}:{suite.secret}",
                "-T",
                str(src),
                f"{suite.url}/api/files/content/concurrent-{i}.bin",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    peak_sampled = base_rss
    deadline = time.monotonic() + timeout + 30
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        peak_sampled = max(peak_sampled, rss_kib(pid, "VmRSS"))
        time.sleep(0.1)
    for p in procs:
        if p.poll() is None:
            p.kill()
    outs = [p.communicate() for p in procs]
    wall = time.perf_counter() - t0
    c1, s1 = children_cpu(), server_cpu(pid)
    codes = [o[0].split()[0] if o[0].split() else "000" for o in outs]
    done = sum(
        1 for o in outs if o[0].split()[:1] and o[0].split()[0][:1] == "2" and int(float(o[0].split()[1])) == size
    )
    errors = sorted({o[1].strip().splitlines()[-1] for o in outs if o[1].strip()})
    return {
        "uploads": n,
        "completed": done,
        "codes": sorted(set(codes)),
        "errors": errors[:3],
        "seconds": wall,
        "aggregate_mb_per_s": done * size / wall / MB if wall else 0.0,
        "server_cpu_s_per_gib": (s1 - s0) / (done * size / GiB) if done else None,
        "client_cpu_s": c1 - c0,
        "rss_before_mib": base_rss / 1024,
        "peak_rss_mib": (rss_kib(pid, "VmHWM") if reset else peak_sampled) / 1024,
        "peak_rss_sampled_mib": peak_sampled / 1024,
        "peak_source": "VmHWM (reset before)" if reset else "VmRSS sampled every 0.1 s (VmHWM reset refused)",
    }


def plan_concurrency(root: Path, size: int, wanted: int) -> tuple[int, str]:
    free = shutil.disk_usage(root).free
    # Each concurrent upload is a whole temp blob until it commits; plus the source, the stored blob,
    # dd's file and the tus spool, plus room for the system.
    need = (wanted + 4) * size + 6 * GiB
    if free >= need:
        return wanted, f"{free / GiB:.0f} GiB free, {need / GiB:.0f} GiB needed"
    fit = max(0, int((free - 6 * GiB) // size) - 4)
    return min(wanted, fit), (
        f"only {free / GiB:.0f} GiB free on {root} ({need / GiB:.0f} GiB needed for "
        f"{wanted}): scaled to {min(wanted, fit)} concurrent uploads"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=1024, help="file size in MiB (1024)")
    ap.add_argument("--downloads", type=int, default=3, help="measured downloads per server (3)")
    ap.add_argument("--uploads", type=int, default=2, help="measured Suite PUT uploads and dd runs (2)")
    ap.add_argument("--concurrent", type=int, default=20, help="concurrent uploads for the RSS peak (20)")
    ap.add_argument("--skip-concurrent", action="store_true")
    ap.add_argument("--skip-tus", action="store_true")
    ap.add_argument(
        "--tus-chunks",
        default="whole,50,5",
        help="tus PATCH sizes in MiB, comma-separated; 'whole' = one PATCH (whole,50,5)",
    )
    ap.add_argument("--skip-uploads", action="store_true", help="no dd / PUT / tus rounds (downloads only)")
    ap.add_argument(
        "--what-if-blob-writer",
        action="store_true",
        help="serve through whatif_blob_writer.py (hash in the write thread, early write-back)",
    )
    ap.add_argument("--no-install", action="store_true", help="do not apt-get install nginx when missing")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (logs, data)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args()
    if shutil.which("curl") is None:
        print("curl is needed (apt-get install curl)")
        return 1

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    size = a.mib * 1024**2
    one_timeout = max(120.0, size / (20 * MB))  # nothing here is slower than 20 MB/s unless broken
    root = make_root()
    suite = None
    nginxes: list[Nginx] = []
    rows: dict[str, Row] = {}
    result: dict = {"mib": a.mib, "notes": []}
    try:
        www = root / "www"
        www.mkdir()
        src = www / "big.bin"
        if a.what_if_blob_writer:
            msg = (
                "WHAT-IF: suite runs with suite.storage.blobs._DiskWriter.write patched "
                "(bench/files/whatif_blob_writer.py); not the product as shipped"
            )
            result["notes"].append(msg)
            print(msg)
        print(f"Files bench: {a.mib} MiB file of random bytes in {root}; MB = 10^6 bytes", flush=True)
        make_file(src, size)
        n_conc, disk_note = (0, "skipped") if a.skip_concurrent else plan_concurrency(root, size, a.concurrent)
        if n_conc != a.concurrent and not a.skip_concurrent:
            result["notes"].append(disk_note)
            print(disk_note)

        binary = nginx_binary(install=not a.no_install)
        if binary is None:
            result["notes"].append("nginx not available: measured without it")
            print("nginx is not available: no nginx column")
        else:
            nginxes = [Nginx(binary, root=root, www=www, variant=v).start() for v in NGINX_VARIANTS]
        prefix = None
        if a.what_if_blob_writer:
            prefix = [suite_python(DEFAULT_SUITE_BIN), str(Path(__file__).with_name("whatif_blob_writer.py"))]
        suite = SuiteGateway(USER, "correct horse battery staple", root=root, serve_prefix=prefix).start()
        auth = ["-u", f"{USER}:{suite.secret}"]
        put_url = f"{suite.url}/api/files/content"
        spid = suite.proc.pid

        # The file into Suite (warm-up, shown but not counted)
        w = timed_curl(
            [*auth, "-o", "/dev/null", "-T", str(src), f"{put_url}/big.bin"], spid, size, one_timeout, "size_up"
        )
        print(f"first upload to Suite: {w.mbs:.0f} MB/s{'' if w.ok else ' FAILED: ' + w.note}", flush=True)
        if not w.ok:
            print(suite.log_tail())
            return 1

        # Downloads, alternated after one unmeasured warm-up each
        dl = []
        for nginx in nginxes:
            assert nginx.proc is not None
            dl.append((f"download nginx ({nginx.variant})", [f"{nginx.url}/big.bin"], nginx.proc.pid))
        dl.append(("download Suite GET", [*auth, f"{put_url}/big.bin"], spid))
        for label, args, pid in dl:
            rows[label] = Row(label)
            timed_curl(["-o", "/dev/null", *args], pid, size, one_timeout, "size_down")
        for i in range(a.downloads):
            for label, args, pid in dl if i % 2 == 0 else dl[::-1]:
                s = timed_curl(["-o", "/dev/null", *args], pid, size, one_timeout, "size_down")
                rows[label].samples.append(s)
                print(
                    f"  {label:<28} {s.mbs:8.0f} MB/s  srv CPU {s.server_cpu:5.2f} s"
                    f"{'' if s.ok else '  FAILED: ' + s.note}",
                    flush=True,
                )

        # Uploads: dd (durable write of the disk), Suite PUT and tus, alternated (reversed every other round)
        rows["upload dd fdatasync"] = Row("upload dd fdatasync", cpu_label="dd")
        rows["upload Suite PUT"] = Row("upload Suite PUT")
        tus_kinds = [] if a.skip_tus else [f"tus {c}" for c in a.tus_chunks.split(",") if c]
        for kind in tus_kinds:
            rows[f"upload Suite {kind_label(kind)}"] = Row(f"upload Suite {kind_label(kind)}")
        for i in range(0 if a.skip_uploads else a.uploads):
            order = ["dd", "put", *tus_kinds]
            if i % 2:
                order.reverse()
            for kind in order:
                if kind.startswith("tus "):
                    label = f"upload Suite {kind_label(kind)}"
                    s = tus_sample(suite, auth, src, size, kind.split()[1], root, one_timeout)
                elif kind == "dd":
                    s = dd_sample(root / "dd.bin", a.mib, one_timeout)
                    label = "upload dd fdatasync"
                else:
                    s = timed_curl(
                        [*auth, "-o", "/dev/null", "-T", str(src), f"{put_url}/up-{i}.bin"],
                        spid,
                        size,
                        one_timeout,
                        "size_up",
                    )
                    label = "upload Suite PUT"
                rows[label].samples.append(s)
                print(f"  {label:<28} {s.mbs:8.0f} MB/s{'' if s.ok else '  FAILED: ' + s.note}", flush=True)
        conc = None
        if n_conc > 0:
            print(f"  {n_conc} concurrent uploads ...", flush=True)
            conc = concurrent_uploads(suite, src, n_conc, size, max(one_timeout, n_conc * size / (10 * MB)))

        # ---- report
        print(f"\n{'':<28} {'MB/s':>8} {'runs':>5} {'srv CPU s/GiB':>14} {'client CPU s/GiB':>17}")
        for row in rows.values():
            if not row.samples:
                continue
            srv = row.cpu_per_gib("server_cpu") if row.cpu_label == "server" else None
            print(
                f"{row.label:<28} {fmt(row.mbs()):>8} {len(row.good()):>2}/{len(row.samples):<2} "
                f"{fmt(srv, '.2f'):>14} {fmt(row.cpu_per_gib('client_cpu'), '.2f'):>17}"
            )
        print()
        ratios = {}
        ds = rows["download Suite GET"]
        for variant in NGINX_VARIANTS:
            dn = rows.get(f"download nginx ({variant})")
            if dn and dn.mbs() and ds.mbs():
                key = "download_suite_over_nginx" + ("" if variant == "sendfile" else f"_{variant}")
                ratios[key] = ds.mbs() / dn.mbs()
                cn, cs = dn.cpu_per_gib("server_cpu"), ds.cpu_per_gib("server_cpu")
                print(f"download: Suite / nginx ({variant}) = {ratios[key]:.2f}× (goal ≥ 1.0 against the best)")
                if cn and cs:
                    ratios[key.replace("download_", "download_cpu_")] = cs / cn
                    print(f"          Suite's CPU per byte = {cs / cn:.1f}× nginx's ({variant})")
        ud, up = rows["upload dd fdatasync"], rows["upload Suite PUT"]
        if ud.mbs() and up.mbs():
            ratios["upload_put_over_dd"] = up.mbs() / ud.mbs()
            print(f"upload:   Suite PUT / dd = {ratios['upload_put_over_dd']:.2f}× (goal ≥ 0.8)")
            for label, row in rows.items():
                if label.startswith("upload Suite tus") and row.mbs():
                    name = label.removeprefix("upload Suite ")
                    ratios[f"upload_{name}_over_dd"] = row.mbs() / ud.mbs()
                    print(f"          Suite {name} / dd = {row.mbs() / ud.mbs():.2f}× (goal ≥ 0.8)")
        if conc:
            print(
                f"{conc['uploads']} concurrent {a.mib} MiB uploads: {conc['completed']}/{conc['uploads']} complete "
                f"(HTTP {','.join(conc['codes'])}) in {conc['seconds']:.1f} s, "
                f"{conc['aggregate_mb_per_s']:.0f} MB/s together, srv CPU "
                f"{fmt(conc['server_cpu_s_per_gib'], '.2f')} s/GiB"
            )
            print(
                f"   server RSS: {conc['rss_before_mib']:.0f} MiB before, peak {conc['peak_rss_mib']:.0f} MiB "
                f"(goal < 200 MB; {conc['peak_source']}; sampled peak {conc['peak_rss_sampled_mib']:.0f} MiB)"
            )
            for e in conc["errors"]:
                print(f"   error: {e}")
        if n_conc == 0 and not a.skip_concurrent:
            print(f"concurrent uploads skipped: {disk_note}")
        result.update(rows={k: r.as_json() for k, r in rows.items()}, ratios=ratios, concurrent=conc)
        if a.json:
            a.json.write_text(json.dumps(result, indent=2))
        measured = any(r.good() for r in rows.values())
        return 0 if measured else 1
    except ServerError as exc:
        print(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping")
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # cleanup runs to its end
        for server in (suite, *nginxes):
            if server is not None:
                server.stop()
        if a.keep:
            print(f"kept {root}")
        else:
            remove_root(root)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
