"""Shared harness for tokenway integration tests.

Starts the real binaries of the build directory named by $TOKENWAY_BIN_DIR on loopback ports and
offers small HTTP/SSE helpers built on the standard library only.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest

BIN_DIR = os.environ.get("TOKENWAY_BIN_DIR", os.path.join(os.path.dirname(__file__), "../../build"))


def bin_path(name):
    for sub in ("", "src/main", "tests/support"):
        p = os.path.join(BIN_DIR, sub, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{name} not found under {BIN_DIR}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")


def check_sanitizer_reports(name, lines):
    """Fails the test if a child process printed a sanitizer report."""
    for i, line in enumerate(lines):
        if any(m in line for m in SANITIZER_MARKERS):
            raise AssertionError(f"{name} reported a sanitizer error:\n" + "\n".join(lines[i:i + 40]))


class _Drain(threading.Thread):
    """Collects a child's output lines so its pipe never fills."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream = stream
        self.lines = []
        self.start()

    def run(self):
        for line in iter(self.stream.readline, b""):
            self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))


class Sim:
    """A tokenway-sim fleet: `count` endpoints in one process, ports chosen by the simulator."""

    def __init__(self, count=1, args=()):
        cmd = [bin_path("tokenway-sim"), "--port", "0", "--count", str(count), *map(str, args)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.err = _Drain(self.proc.stderr)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(5)
            raise RuntimeError("tokenway-sim did not start: " + "\n".join(self.err.lines))
        ready = json.loads(line)
        self.out = _Drain(self.proc.stdout)
        self.endpoints = ready["endpoints"]
        self.ports = [e["port"] for e in self.endpoints]
        self.urls = [f"http://127.0.0.1:{p}" for p in self.ports]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()
        check_sanitizer_reports("tokenway-sim", self.err.lines)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Gateway:
    """A tokenway process on free loopback ports, from a YAML text or quick flags."""

    def __init__(self, config=None, args=(), workers=2, config_path=None, wait=True):
        # Port 0 everywhere: the kernel picks free ports and the gateway logs what it bound, so
        # tests running in parallel never race for a port.
        self.port = None
        self.admin_port = None
        self.config_path = config_path
        cmd = [bin_path("tokenway"), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
               "--workers", str(workers)]
        if config is not None:
            if self.config_path is None:
                import tempfile
                fd, self.config_path = tempfile.mkstemp(suffix=".yaml", prefix="tokenway-test-")
                os.close(fd)
            with open(self.config_path, "w") as f:
                f.write(config)
            cmd += ["--config", self.config_path]
        cmd += list(map(str, args))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = _Drain(self.proc.stdout)
        self.err = _Drain(self.proc.stderr)
        self.base = None
        self.admin = None
        if wait:
            self.wait_ready()

    _LISTENING = re.compile(r"listening on [^ ]+:(\d+) with \d+ workers; admin on [^ ]+:(\d+)")

    def _learn_ports(self):
        for line in list(self.err.lines):
            m = self._LISTENING.search(line)
            if m:
                self.port, self.admin_port = int(m.group(1)), int(m.group(2))
                self.base = f"http://127.0.0.1:{self.port}"
                self.admin = f"http://127.0.0.1:{self.admin_port}"
                return True
        return False

    def wait_ready(self, path="/healthz", timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("tokenway exited: " + "\n".join(self.err.lines))
            if self.admin is None and not self._learn_ports():
                time.sleep(0.02)
                continue
            try:
                st, _, _ = request("GET", self.admin + path, timeout=1)
                if st == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("tokenway not ready: " + "\n".join(self.err.lines))

    def access_log(self):
        return [json.loads(l) for l in self.out.lines if l.startswith("{")]

    def metrics(self):
        _, _, body = request("GET", self.admin + "/metrics")
        return body.decode()

    def metric(self, name, **labels):
        """Sum of every sample of `name` whose labels include `labels`."""
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            metric_name, _, label_text = head.partition("{")
            if metric_name != name:
                continue
            if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
                total += float(value)
        return total

    def stop(self, sig=signal.SIGTERM, timeout=40):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.join(5)
        self.err.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()
        check_sanitizer_reports("tokenway", self.err.lines)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _split(url):
    assert url.startswith("http://")
    rest = url[len("http://"):]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    return host, int(port or 80), "/" + path


def request(method, url, body=None, headers=None, timeout=30):
    """One request on a fresh connection; returns (status, headers dict, body bytes)."""
    host, port, path = _split(url)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def post_json(url, obj, headers=None, timeout=30):
    st, hdrs, data = request("POST", url, obj, headers, timeout)
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        parsed = None
    return st, hdrs, parsed, data


def sse_events(url, obj, headers=None, timeout=30):
    """POSTs a streaming request; returns (status, headers, [event data strings], raw bytes)."""
    st, hdrs, data = request("POST", url, obj, headers, timeout)
    events = []
    if hdrs.get("content-type", "").startswith("text/event-stream"):
        for block in data.decode().split("\n\n"):
            lines = [l[len("data:"):].lstrip() for l in block.split("\n") if l.startswith("data:")]
            if lines:
                events.append("\n".join(lines))
    return st, hdrs, events, data


def chat_body(model, text="Hello there", max_tokens=16, stream=False, **extra):
    body = {"model": model, "messages": [{"role": "user", "content": text}],
            "max_tokens": max_tokens, "stream": stream}
    body.update(extra)
    return body


def main():
    unittest.main(verbosity=2)


MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def gateway_yaml(urls, policy="least-request", model=MODEL, extra="", loras=(),
                 health_interval="200ms", consecutive_failures=3, base_ejection="1s"):
    """A gateway config with one pool over `urls`; `extra` is appended verbatim."""
    eps = "\n".join(f"      - {u}" for u in urls)
    lora_models = "".join(f"  - name: {l}\n    pool: p\n    parent: {model}\n" for l in loras)
    return f"""
pools:
  - name: p
    policy: {policy}
    endpoints:
{eps}
models:
  - name: {model}
    pool: p
{lora_models}health:
  active:
    interval: {health_interval}
    timeout: 500ms
  passive:
    consecutive_failures: {consecutive_failures}
    base_ejection: {base_ejection}
    max_ejection: 10s
{extra}
"""


def set_faults(url, **faults):
    st, _, data = request("POST", url + "/sim/faults", faults)
    assert st == 200, (st, data)


def wait_until(predicate, timeout=10, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def content_of(events):
    """Concatenated delta content of chat chunk events; ignores [DONE] and usage chunks."""
    text = []
    for e in events:
        if e == "[DONE]":
            continue
        obj = json.loads(e)
        for c in obj.get("choices", []):
            text.append((c.get("delta") or {}).get("content") or c.get("text") or "")
    return "".join(text)
