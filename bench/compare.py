#!/usr/bin/env python3
"""Side-by-side timings of ukpm, skopeo, crane (when on PATH) and a raw curl floor.

Starts its own docker-registry on 127.0.0.1 (a fresh one for every push) and, for the WAN
profile, a TCP proxy of its own that caps each connection's bandwidth and delays each chunk.
Prints the median of several runs for each tool and case, the ratios, and ukpm's peak RSS.

Environment knobs (defaults in brackets):
  UKPM          the ukpm binary [target/release/ukpm]
  RUNS          runs per case [3]
  INITRD_MB     size of the big initrd [512]
  KERNEL_MB     size of the kernel [8]
  WAN_MB        size of the initrd pulled through the WAN proxy [128]
  WAN_RATE_MB   per-connection cap of the WAN proxy in MiB/s [25]
  WAN_DELAY_MS  one-way delay per chunk of the WAN proxy [20]
  SMALL_IMAGES  small images in cases (d) and (e) [50]
  REPOS         repositories (3 tags each) listed in case (i) [1000]
  HUGE_GB       size of the initrd of case (j), which is not in the default CASES: it needs
                about four times this much free disk [10]
  CASES         which cases to run, e.g. "a b f g h" [all but j]; "r" is the ranged pull
                against a curl floor fetching the same ranges in parallel
Nothing it starts outlives it; everything it writes is under one temp folder.
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UKPM = os.environ.get("UKPM", os.path.join(ROOT, "target", "release", "ukpm"))
RUNS = int(os.environ.get("RUNS", "3"))
INITRD_MB = int(os.environ.get("INITRD_MB", "512"))
KERNEL_MB = int(os.environ.get("KERNEL_MB", "8"))
WAN_MB = int(os.environ.get("WAN_MB", "128"))
WAN_RATE = float(os.environ.get("WAN_RATE_MB", "25")) * (1 << 20)
WAN_DELAY = float(os.environ.get("WAN_DELAY_MS", "20")) / 1000.0
SMALL_IMAGES = int(os.environ.get("SMALL_IMAGES", "50"))
REPOS = int(os.environ.get("REPOS", "1000"))
HUGE_GB = float(os.environ.get("HUGE_GB", "10"))
CASES = os.environ.get("CASES", "a b c d e f g h i r").split()

WORK = tempfile.mkdtemp(prefix="ukpm-bench-")
CRANE = shutil.which("crane")
SKOPEO = shutil.which("skopeo")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Registry:
    """A docker-registry on 127.0.0.1 with its own storage."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(dir=WORK, prefix="reg-")
        self.port = free_port()
        config = os.path.join(self.dir, "config.yml")
        with open(config, "w") as f:
            f.write(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                f"storage:\n  filesystem:\n    rootdirectory: {self.dir}/data\n  delete:\n    enabled: true\n"
                f"http:\n  addr: 127.0.0.1:{self.port}\n  secret: bench\n"
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("docker-registry did not start")

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Proxy:
    """A TCP proxy capping each connection's server-to-client rate and delaying each chunk."""

    def __init__(self, target_port, rate, delay):
        self.rate, self.delay, self.target = rate, delay, target_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.running = True
        threading.Thread(target=self.accept, daemon=True).start()

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    def accept(self):
        while self.running:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self.pipe, args=(client, upstream, 0, self.delay), daemon=True).start()
            threading.Thread(target=self.pipe, args=(upstream, client, self.rate, self.delay), daemon=True).start()

    @staticmethod
    def pipe(src, dst, rate, delay):
        """Forwards src to dst: each chunk is delivered `delay` after it arrived (latency, not a
        pause per chunk), and no faster than `rate` bytes/s when a rate is set."""
        import collections

        queue = collections.deque()
        lock = threading.Condition()
        closed = [False]

        def reader():
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    with lock:
                        queue.append((time.monotonic() + delay, data))
                        lock.notify()
            except OSError:
                pass
            with lock:
                closed[0] = True
                lock.notify()

        threading.Thread(target=reader, daemon=True).start()
        start, sent = time.monotonic(), 0
        try:
            while True:
                with lock:
                    while not queue and not closed[0]:
                        lock.wait()
                    if not queue:
                        break
                    due, data = queue.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                dst.sendall(data)
                sent += len(data)
                if rate:
                    ahead = sent / rate - (time.monotonic() - start)
                    if ahead > 0:
                        time.sleep(ahead)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def stop(self):
        self.running = False
        self.sock.close()


def timed(cmd, env=None):
    """Runs a command under /usr/bin/time -v to also get its peak RSS."""
    full = dict(os.environ, **(env or {}))
    start = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-v"] + cmd, env=full, capture_output=True)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.decode(errors='replace')[-2000:]}")
    rss = 0
    for line in proc.stderr.decode(errors="replace").splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.rsplit(":", 1)[1])
    return seconds, rss


def write_file(path, size, seed):
    block = bytes((i * seed + 13) % 251 for i in range(1 << 20))
    with open(path, "wb") as f:
        for i in range(size >> 20):
            f.write(block[i % 7 :] + block[: i % 7])
        f.write(block[: size % (1 << 20)])


def ukpm(store, *args, env=None):
    return timed([UKPM, "-q", "--store", store] + list(args), env=env)


def fresh(name):
    return tempfile.mkdtemp(dir=WORK, prefix=name + "-")


def blobs_of(registry, repo, tag):
    """The blob digests of a (single-platform) image, through the registry API."""
    import urllib.request

    def get(path, accept=None):
        req = urllib.request.Request(f"http://{registry}/v2/{repo}/{path}")
        if accept:
            req.add_header("Accept", accept)
        return json.load(urllib.request.urlopen(req))

    index = get(f"manifests/{tag}", "application/vnd.oci.image.index.v1+json")
    digests = []
    for m in index.get("manifests", [index]):
        manifest = get(f"manifests/{m['digest']}", "application/vnd.oci.image.manifest.v1+json")
        digests += [manifest["config"]["digest"]] + [l["digest"] for l in manifest["layers"]]
    return digests


def fill_repositories(registry, source_repo, tag, count):
    """Copies one pushed package into `count` repositories (r0 .. r{count-1}), three tags each,
    straight through the registry API on one keep-alive connection: blobs mounted from the
    source repository, the manifest and index put by digest and by tag."""
    import http.client

    host, port = registry.split(":")
    conn = http.client.HTTPConnection(host, int(port))

    def call(method, path, body=None, headers=None):
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        if response.status >= 300:
            raise SystemExit(f"{method} {path}: {response.status} {data[:200]!r}")
        return response, data

    index_type = "application/vnd.oci.image.index.v1+json"
    manifest_type = "application/vnd.oci.image.manifest.v1+json"
    _, index = call("GET", f"/v2/{source_repo}/manifests/{tag}", headers={"Accept": index_type})
    entry = json.loads(index)["manifests"][0]
    _, manifest = call("GET", f"/v2/{source_repo}/manifests/{entry['digest']}", headers={"Accept": manifest_type})
    parsed = json.loads(manifest)
    blobs = [parsed["config"]["digest"]] + [layer["digest"] for layer in parsed["layers"]]
    for i in range(1, count):
        repo = f"bench/r{i}"
        for digest in blobs:
            call("POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={source_repo}")
        call("PUT", f"/v2/{repo}/manifests/{entry['digest']}", manifest, {"Content-Type": manifest_type})
        for t in ("v1", "v2", "v3"):
            call("PUT", f"/v2/{repo}/manifests/{t}", index, {"Content-Type": index_type})
    for t in ("v2", "v3"):
        call("PUT", f"/v2/{source_repo}/manifests/{t}", index, {"Content-Type": index_type})
    conn.close()


class DiskWatch:
    """Samples the free space of WORK's file system while a command runs: how much more disk
    the command held at its peak than before it started."""

    def __init__(self):
        self.start = self.free()
        self.low = self.start
        self.running = True
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    @staticmethod
    def free():
        st = os.statvfs(WORK)
        return st.f_bavail * st.f_frsize

    def sample(self):
        while self.running:
            self.low = min(self.low, self.free())
            time.sleep(0.05)

    def peak(self):
        self.running = False
        self.thread.join()
        return self.start - min(self.low, self.free())


def huge_case(kernel):
    """(j) One initrd of HUGE_GB GiB, a real file: pack, push, pull, unpack and fsck against
    cp, curl and GNU tar, one run each, with peak RSS and the disk each held at its peak."""
    size = int(HUGE_GB * (1 << 30))
    gib = size / (1 << 30)
    print(f"(j) a {gib:.1f} GiB initrd: pack, push, pull, unpack, fsck (one run each)")
    src = fresh("huge")
    huge = os.path.join(src, "initrd")
    write_file(huge, size, 7)

    def step(case, label, cmd, env=None):
        watch = DiskWatch()
        seconds, rss = timed(cmd, env)
        extra = watch.peak()
        print(f"  {label:<28} {seconds:8.2f} s  peak RSS {rss / 1024:7.1f} MiB  "
              f"disk held {extra / size:5.2f} x the file")
        results.append((case, label, seconds, rss))
        return seconds

    def ratio(case, ours, floor, name):
        print(f"  ({case}) ukpm / {name}: {ours / floor:.2f}")

    copy = os.path.join(src, "copy")
    floor = step("j pack", "cp", ["cp", huge, copy])
    os.remove(copy)
    store = fresh("huge-store")
    ours = step("j pack", "ukpm pack", [UKPM, "-q", "--store", store, "pack", "bench/huge:v1", "--kernel", kernel,
                                         "--initrd", huge, "--arch", "x86_64", "--plat", "qemu"])
    ratio("j pack", ours, floor, "cp")
    os.remove(huge)
    blobs = os.path.join(store, "blobs", "sha256")
    layer = max((os.path.join(blobs, n) for n in os.listdir(blobs)), key=os.path.getsize)
    digest = "sha256:" + os.path.basename(layer)

    reg = Registry()
    floor = step("j push", "curl floor (POST + PUT)", ["sh", "-c",
        f"loc=$(curl -sf -X POST -D - -o /dev/null http://{reg.host}/v2/floor/x/blobs/uploads/ "
        "| tr -d '\\r' | sed -n 's/^[Ll]ocation: //p'); "
        f"case $loc in http*) ;; *) loc=http://{reg.host}$loc;; esac; "
        f"curl -sf -T {layer} \"$loc&digest={digest}\""])
    reg.stop()
    reg = Registry()
    ours = step("j push", "ukpm push", [UKPM, "-q", "--store", store, "push", "bench/huge:v1",
                                         "--to", f"{reg.host}/bench/huge:v1"])
    ratio("j push", ours, floor, "curl")

    out = os.path.join(src, "curl-out")
    floor = step("j pull", "curl floor", ["curl", "-sf", "-o", out, f"http://{reg.host}/v2/bench/huge/blobs/{digest}"])
    os.remove(out)
    pulled = fresh("huge-pulled")
    ours = step("j pull", "ukpm pull", [UKPM, "-q", "--store", pulled, "pull", f"{reg.host}/bench/huge:v1"])
    ratio("j pull", ours, floor, "curl")
    reg.stop()
    shutil.rmtree(pulled)

    target = fresh("huge-tar")
    floor = step("j unpack", "tar -xf + sha256sum", ["sh", "-c",
        f"tar -xf {layer} -C {target} && sha256sum {layer} >/dev/null"])
    shutil.rmtree(target)
    target = os.path.join(fresh("huge-unpack"), "out")
    ours = step("j unpack", "ukpm unpack", [UKPM, "-q", "--store", store, "unpack", "bench/huge:v1", target])
    ratio("j unpack", ours, floor, "tar + sha256sum")
    shutil.rmtree(os.path.dirname(target))

    floor = step("j fsck", "sha256sum of the blobs", ["sh", "-c", f"sha256sum {blobs}/* >/dev/null"])
    ours = step("j fsck", "ukpm fsck", [UKPM, "-q", "--store", store, "fsck"])
    ratio("j fsck", ours, floor, "sha256sum")
    shutil.rmtree(store)
    shutil.rmtree(src)


def curl_pull(registry, repo, digests, out):
    cmd = ["curl", "-sf", "--parallel", "--parallel-max", "4"]
    for d in digests:
        cmd += ["-o", os.path.join(out, d.split(":")[1]), f"http://{registry}/v2/{repo}/blobs/{d}"]
    return timed(cmd)


# What ukpm's transfer engine does with a large blob (crates/ukpm/src/transfer.rs): blobs of
# RANGED_MIN or more go as pieces of size/8 clamped to [1 MiB, 8 MiB], 8 in flight.
RANGED_MIN = 16 << 20


def ranges_of(size):
    piece = min(max(-(-size // 8), 1 << 20), 8 << 20)
    return [(a, min(a + piece, size) - 1) for a in range(0, size, piece)]


def curl_ranges(registry, repo, digests, store, out):
    """The floor of a ranged pull: the same requests, 8 at once, into files; no hashing, no sync."""
    # -r applies to every URL of its option set: each transfer gets its own set (--next).
    transfers = []
    for d in digests:
        hexd = d.split(":")[1]
        size = os.path.getsize(os.path.join(store, "blobs", "sha256", hexd))
        url = f"http://{registry}/v2/{repo}/blobs/{d}"
        if size < RANGED_MIN:
            transfers.append(["-sf", "-o", os.path.join(out, hexd), url])
        else:
            for a, b in ranges_of(size):
                transfers.append(["-sf", "-r", f"{a}-{b}", "-o", os.path.join(out, f"{hexd}.{a}"), url])
    cmd = ["curl", "--parallel", "--parallel-max", "8"]
    for i, transfer in enumerate(transfers):
        cmd += (["--next"] if i else []) + transfer
    return timed(cmd)


def median(samples):
    return statistics.median(s[0] for s in samples), max(s[1] for s in samples)


results = []


def report(case, label, samples, floor=None):
    med, rss = median(samples)
    results.append((case, label, med, rss))
    extra = f"  peak RSS {rss / 1024:.1f} MiB" if rss else ""
    print(f"  {label:<28} {med:8.3f} s{extra}", flush=True)


def ratio_lines(case):
    rows = [r for r in results if r[0] == case]
    mine = [r for r in rows if r[1].startswith("ukpm")]
    others = [r for r in rows if not r[1].startswith("ukpm")]
    for m in mine:
        for o in others:
            print(f"  ratio {m[1]} / {o[1]} = {m[2] / o[2]:.2f}")
    # Floors (curl, cp, tar, sha256sum) are not peers: the best peer is the fastest other tool.
    peers = [o for o in others if o[1].split()[0] not in ("curl", "cp", "tar", "sha256sum")]
    if mine and peers:
        best = min(peers, key=lambda r: r[2])
        for m in mine:
            print(f"  best peer: {best[1]} ({best[2]:.3f} s); {m[1]} / best peer = {m[2] / best[2]:.2f}")


def main():
    if not os.path.exists(UKPM):
        raise SystemExit(f"{UKPM} is missing: cargo build --release -p ukpm-cli")
    print(f"machine: {os.cpu_count()} cores; {UKPM}; runs {RUNS}; work in {WORK}")
    src = fresh("inputs")
    kernel = os.path.join(src, "kernel")
    initrd = os.path.join(src, "initrd")
    write_file(kernel, KERNEL_MB << 20, 3)
    write_file(initrd, INITRD_MB << 20, 5)
    store = fresh("store")
    ukpm(store, "pack", "bench/big:v1", "--kernel", kernel, "--initrd", initrd, "--arch", "x86_64", "--plat", "qemu")

    if "g" in CASES:
        print(f"(g) pack of a {INITRD_MB} MiB initrd vs cp")
        samples = []
        for _ in range(RUNS):
            s = fresh("pack")
            samples.append(ukpm(s, "pack", "p:1", "--kernel", initrd, "--arch", "x86_64", "--plat", "qemu"))
            shutil.rmtree(s)
        report("g", "ukpm pack", samples)
        samples = []
        for _ in range(RUNS):
            target = os.path.join(fresh("cp"), "copy")
            samples.append(timed(["cp", initrd, target]))
        report("g", "cp", samples)
        ratio_lines("g")

    if "b" in CASES or "f" in CASES:
        print(f"(b) push of {KERNEL_MB} MiB + {INITRD_MB} MiB on loopback (fresh registry each run)")
        push = {"ukpm push": [], "skopeo": [], "curl floor": []}
        for _ in range(RUNS):
            reg = Registry()
            push["ukpm push"].append(ukpm(store, "push", "bench/big:v1", "--to", f"{reg.host}/bench/big:v1"))
            reg.stop()
            if SKOPEO:
                reg = Registry()
                push["skopeo"].append(
                    timed([SKOPEO, "copy", "--dest-tls-verify=false", "--multi-arch", "all", "--preserve-digests",
                           f"oci:{store}:unikraft.org/bench/big:v1", f"docker://{reg.host}/bench/big:v1"])
                )
                reg.stop()
            reg = Registry()
            blobs = os.path.join(store, "blobs", "sha256")
            biggest = sorted(os.listdir(blobs), key=lambda n: -os.path.getsize(os.path.join(blobs, n)))[:2]
            script = "set -e\n" + "".join(
                f"loc=$(curl -sf -X POST -D - -o /dev/null http://{reg.host}/v2/bench/big/blobs/uploads/ "
                f"| tr -d '\\r' | awk 'tolower($1)==\"location:\"{{print $2}}')\n"
                f"case $loc in http*) ;; *) loc=http://{reg.host}$loc;; esac\n"
                f"curl -sf -T {blobs}/{b} -X PUT \"$loc&digest=sha256:{b}\"\n"
                for b in biggest
            )
            push["curl floor"].append(timed(["bash", "-c", script]))
            reg.stop()
        for label, samples in push.items():
            if samples:
                report("b", label, samples)
        ratio_lines("b")

    reg = Registry()
    ukpm(store, "push", "bench/big:v1", "--to", f"{reg.host}/bench/big:v1")
    if "f" in CASES:
        print("(f) no-op re-push")
        report("f", "ukpm push (no-op)", [ukpm(store, "push", "bench/big:v1", "--to", f"{reg.host}/bench/big:v1") for _ in range(RUNS)])
        if SKOPEO:
            report("f", "skopeo (no-op)", [
                timed([SKOPEO, "copy", "--dest-tls-verify=false", "--multi-arch", "all", "--preserve-digests",
                       f"oci:{store}:unikraft.org/bench/big:v1", f"docker://{reg.host}/bench/big:v1"]) for _ in range(RUNS)])
        ratio_lines("f")

    if "a" in CASES:
        print(f"(a) pull of {KERNEL_MB} MiB + {INITRD_MB} MiB on loopback")
        digests = blobs_of(reg.host, "bench/big", "v1")
        pull_cases(reg.host, "bench/big:v1", "a", digests)

    if "r" in CASES:
        print(f"(r) ranged pull of {KERNEL_MB} MiB + {INITRD_MB} MiB on loopback vs curl fetching the same ranges")
        digests = blobs_of(reg.host, "bench/big", "v1")
        samples = {"ukpm pull": [], "curl ranges floor": []}
        for _ in range(RUNS):
            samples["ukpm pull"].append(ukpm(fresh("pull"), "pull", f"{reg.host}/bench/big:v1", "--all-platforms"))
            samples["curl ranges floor"].append(curl_ranges(reg.host, "bench/big", digests, store, fresh("curl")))
        for label, s in samples.items():
            report("r", label, s)
        ratio_lines("r")

    if "c" in CASES:
        print(f"(c) pull of {KERNEL_MB} MiB + {WAN_MB} MiB through the WAN proxy "
              f"({WAN_RATE / (1 << 20):.0f} MiB/s per connection, {WAN_DELAY * 1000:.0f} ms)")
        wan_initrd = os.path.join(src, "wan-initrd")
        write_file(wan_initrd, WAN_MB << 20, 11)
        ukpm(store, "pack", "bench/wan:v1", "--kernel", kernel, "--initrd", wan_initrd, "--arch", "x86_64", "--plat", "qemu")
        ukpm(store, "push", "bench/wan:v1", "--to", f"{reg.host}/bench/wan:v1")
        proxy = Proxy(reg.port, WAN_RATE, WAN_DELAY)
        digests = blobs_of(reg.host, "bench/wan", "v1")
        pull_cases(proxy.host, "bench/wan:v1", "c", digests)
        proxy.stop()

    if "d" in CASES or "e" in CASES:
        print(f"(d, e) {SMALL_IMAGES} small images sharing one kernel, through the WAN proxy")
        small = fresh("small")
        for i in range(SMALL_IMAGES):
            write_file(os.path.join(small, f"initrd-{i}"), 64 << 10, 17 + i)
            ukpm(store, "pack", f"bench/small{i}:v1", "--kernel", kernel, "--initrd",
                 os.path.join(small, f"initrd-{i}"), "--arch", "x86_64", "--plat", "qemu")
        proxy = Proxy(reg.port, WAN_RATE, WAN_DELAY)
        names = [f"bench/small{i}:v1" for i in range(SMALL_IMAGES)]
        if "e" in CASES:
            samples = {"ukpm push": [], "skopeo": []}
            for _ in range(RUNS):
                reg2 = Registry()
                proxy2 = Proxy(reg2.port, WAN_RATE, WAN_DELAY)
                start = time.monotonic()
                for n in names:
                    ukpm(store, "push", n, "--to", f"{proxy2.host}/{n}")
                samples["ukpm push"].append((time.monotonic() - start, 0))
                proxy2.stop()
                reg2.stop()
                if SKOPEO:
                    reg2 = Registry()
                    proxy2 = Proxy(reg2.port, WAN_RATE, WAN_DELAY)
                    start = time.monotonic()
                    for n in names:
                        timed([SKOPEO, "copy", "--dest-tls-verify=false", "--multi-arch", "all", "--preserve-digests",
                               f"oci:{store}:unikraft.org/{n}", f"docker://{proxy2.host}/{n}"])
                    samples["skopeo"].append((time.monotonic() - start, 0))
                    proxy2.stop()
                    reg2.stop()
            for label, s in samples.items():
                if s:
                    report("e", label, s)
            ratio_lines("e")
        if "d" in CASES:
            for n in names:
                ukpm(store, "push", n, "--to", f"{reg.host}/{n}")
            samples = {"ukpm pull": [], "ukpm pull (one run)": [], "skopeo": [], "crane": []}
            for _ in range(RUNS):
                target = fresh("pull-small")
                start = time.monotonic()
                for n in names:
                    ukpm(target, "pull", f"{proxy.host}/{n}")
                samples["ukpm pull"].append((time.monotonic() - start, 0))
                samples["ukpm pull (one run)"].append(
                    ukpm(fresh("pull-many"), "pull", *[f"{proxy.host}/{n}" for n in names]))
                if SKOPEO:
                    target = fresh("skopeo-small")
                    start = time.monotonic()
                    for n in names:
                        timed([SKOPEO, "copy", "--src-tls-verify=false", "--multi-arch", "all", "--preserve-digests",
                               f"docker://{proxy.host}/{n}", f"oci:{target}:{n.replace('/', '_')}"])
                    samples["skopeo"].append((time.monotonic() - start, 0))
                if CRANE:
                    target = fresh("crane-small")
                    start = time.monotonic()
                    for n in names:
                        timed([CRANE, "pull", "--insecure", "--format", "oci", f"{proxy.host}/{n}",
                               os.path.join(target, n.replace("/", "_"))])
                    samples["crane"].append((time.monotonic() - start, 0))
            for label, s in samples.items():
                if s:
                    report("d", label, s)
            ratio_lines("d")
        proxy.stop()

    if "h" in CASES:
        print("(h) ls of 1,000 packages")
        many = fresh("many")
        for i in range(1000):
            ukpm(many, "pack", f"many/p{i}:v1", "--kernel", kernel, "--arch", "x86_64", "--plat", "qemu",
                 "--cmd", str(i))
        report("h", "ukpm ls", [ukpm(many, "ls") for _ in range(RUNS)])
    if "i" in CASES:
        print(f"(i) ls --remote of {REPOS} repositories, 3 tags each, through the WAN proxy")
        listed = Registry()
        ukpm(store, "push", "bench/small0:v1", "--to", f"{listed.host}/bench/r0:v1")
        fill_repositories(listed.host, "bench/r0", "v1", REPOS)
        proxy = Proxy(listed.port, WAN_RATE, WAN_DELAY)
        samples = {"ukpm ls --remote": [], "crane catalog + ls": []}
        for _ in range(RUNS):
            cache = fresh("remote-cache")
            env = {"XDG_CACHE_HOME": cache}
            samples["ukpm ls --remote"].append(
                ukpm(fresh("empty"), "ls", "--remote", "--update", "--registry", proxy.host, env=env))
            # One crane run: a thousand `crane ls` processes through the WAN take minutes.
            if CRANE and not samples["crane catalog + ls"]:
                start = time.monotonic()
                repos = subprocess.run([CRANE, "catalog", "--insecure", proxy.host], capture_output=True,
                                       check=True, text=True).stdout.split()
                for repo in repos:
                    subprocess.run([CRANE, "ls", "--insecure", f"{proxy.host}/{repo}"], capture_output=True,
                                   check=True)
                samples["crane catalog + ls"].append((time.monotonic() - start, 0))
        for label, s in samples.items():
            if s:
                report("i", label, s)
        ratio_lines("i")
        proxy.stop()
        listed.stop()
    if "j" in CASES:
        huge_case(kernel)
    reg.stop()

    print("\nsummary (case, tool, median seconds, peak RSS MiB):")
    for case, label, med, rss in results:
        print(f"  {case} {label:<28} {med:8.3f} {rss / 1024:8.1f}")


def pull_cases(host, ref, case, digests):
    repo, tag = ref.split(":")
    samples = {"ukpm pull": [], "skopeo": [], "crane": [], "curl floor": []}
    for _ in range(RUNS):
        samples["ukpm pull"].append(ukpm(fresh("pull"), "pull", f"{host}/{ref}", "--all-platforms"))
        if SKOPEO:
            samples["skopeo"].append(timed([SKOPEO, "copy", "--src-tls-verify=false", "--multi-arch", "all",
                                            "--preserve-digests", f"docker://{host}/{ref}", f"oci:{fresh('skopeo')}:x"]))
        if CRANE:
            samples["crane"].append(timed([CRANE, "pull", "--insecure", "--format", "oci", f"{host}/{ref}", fresh("crane")]))
        samples["curl floor"].append(curl_pull(host, repo, digests, fresh("curl")))
    for label, s in samples.items():
        if s:
            report(case, label, s)
    ratio_lines(case)


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
