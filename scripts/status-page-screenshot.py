#!/usr/bin/env python3
"""Screenshot of the status page of a running gateway, taken in real time under light load.

  make run &                                  # the default fleet: API :8080, admin :8081
  scripts/status-page-screenshot.py           # writes docs/img/status-page.png

Sends a few concurrent chat completions (streaming and not) to the API while headless Chromium
shows the admin listener's `/` for --seconds, then captures the page. Chromium is driven over
its DevTools pipe rather than with --screenshot, because --screenshot needs virtual time, which
compresses the page's 2 s refreshes into milliseconds and makes every rate on it meaningless.
Python standard library only.
"""
import argparse
import base64
import fcntl
import json
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
PROMPTS = ["Summarise the plot of Hamlet in three sentences.",
           "Write a haiku about load balancers.",
           "Explain paged attention to a new engineer.",
           "List five uses of a prefix cache.",
           "Translate 'good morning' into French, German and Italian."]


def load(api, stop, concurrency):
    def one(i):
        rng = random.Random(i)
        while not stop.is_set():
            body = {"model": rng.choice([MODEL, MODEL, "sql-lora"]),
                    "messages": [{"role": "user", "content": rng.choice(PROMPTS)}],
                    "max_tokens": rng.randint(32, 160), "stream": rng.random() < 0.7}
            req = urllib.request.Request(api + "/v1/chat/completions", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    r.read()
            except OSError:
                time.sleep(0.2)
            time.sleep(rng.uniform(0.0, 0.3))
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    return threads


class DevTools:
    """Chrome DevTools Protocol over --remote-debugging-pipe (fd 3 in, fd 4 out, NUL-framed)."""

    def __init__(self, chromium, width, height):
        self.profile = tempfile.mkdtemp(prefix="tokenway-chromium-")
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()

        def pipes_on_3_and_4():
            # In the child, before exec: commands in on fd 3, replies out on fd 4. Copied above
            # 10 first so neither dup2 can overwrite the other's source.
            r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            close_fds=False, preexec_fn=pipes_on_3_and_4,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self.next_id = 0
        self.buf = b""

    def call(self, method, session=None, timeout=60, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self.to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while time.time() < deadline:
            while b"\0" not in self.buf:
                chunk = os.read(self.from_child, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self.buf += chunk
            raw, _, self.buf = self.buf.partition(b"\0")
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
        raise TimeoutError(method)

    def close(self):
        try:
            self.call("Browser.close", timeout=10)
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.to_child)
        os.close(self.from_child)
        shutil.rmtree(self.profile, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--admin", default="http://127.0.0.1:8081")
    ap.add_argument("--api", default="http://127.0.0.1:8080")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs", "img",
                                                  "status-page.png"))
    ap.add_argument("--seconds", type=float, default=40, help="load and refresh time before the shot")
    ap.add_argument("--concurrency", type=int, default=6, help="concurrent clients (0: no load)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=900)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = ap.parse_args()

    dt = DevTools(args.chromium, args.width, args.height)  # before any thread: it forks
    stop = threading.Event()
    threads = load(args.api, stop, args.concurrency)
    try:
        target = dt.call("Target.createTarget", url=args.admin + "/")["targetId"]
        session = dt.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        dt.call("Emulation.setDeviceMetricsOverride", session, width=args.width,
                height=args.height, deviceScaleFactor=1, mobile=False)
        time.sleep(args.seconds)
        shot = dt.call("Page.captureScreenshot", session, format="png")
        with open(args.out, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        print(f"wrote {args.out}")
    finally:
        stop.set()
        dt.close()
        for t in threads:
            t.join(35)


if __name__ == "__main__":
    main()
