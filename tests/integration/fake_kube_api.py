"""A fake Kubernetes API server for discovery tests: HTTPS (certificates made with the openssl CLI),
LIST with limit/continue paging, WATCH as a chunked stream of JSON lines with bookmarks, 410 Gone,
bearer-token or client-certificate checks, a 403 mode, silent watches, malformed and oversized
events, and restarts on the same port. Standard library only; state lives in the test process.

Serves pods (/api/v1/namespaces/NS/pods) and InferencePools
(/apis/inference.networking.k8s.io/v1/namespaces/NS/inferencepools) with labelSelector and
fieldSelector=metadata.name=X.
"""
import http.server
import json
import os
import socket
import socketserver
import ssl
import subprocess
import threading
import time
import urllib.parse

POOLS_PREFIX = "/apis/inference.networking.k8s.io/v1/namespaces/"


def make_certs(directory, client=False):
    """Writes ca.crt/ca.key, server.crt/server.key (SAN IP:127.0.0.1) and, with `client`,
    client.crt/client.key signed by the same CA. Returns the directory."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=fake-kube-ca")
    ext = os.path.join(directory, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=kube-apiserver")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
    if client:
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out", "client.csr",
            "-subj", "/CN=tokenway/O=system:serviceaccounts")
        run("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "client.crt", "-days", "2")
    return directory


def pod(name, ip, ready=True, labels=None, annotations=None, namespace="llm", deleting=False):
    obj = {"kind": "Pod", "apiVersion": "v1",
           "metadata": {"name": name, "namespace": namespace, "uid": "uid-" + name,
                        "labels": dict(labels or {}), "annotations": dict(annotations or {}),
                        # Real pods carry a lot the gateway does not read.
                        "managedFields": [{"manager": "kubelet", "operation": "Update"}]},
           "spec": {"nodeName": "node-1", "containers": [{"name": "vllm", "image": "vllm"}]},
           "status": {"phase": "Running" if ready else "Pending",
                      "conditions": [{"type": "PodScheduled", "status": "True"},
                                     {"type": "Ready", "status": "True" if ready else "False"}]}}
    if ip:
        obj["status"]["podIP"] = ip
        obj["status"]["podIPs"] = [{"ip": ip}]
    if deleting:
        obj["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z"
    return obj


def inference_pool(name, match_labels, ports, namespace="llm"):
    return {"kind": "InferencePool", "apiVersion": "inference.networking.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"matchLabels": dict(match_labels)},
                     "targetPorts": [{"number": p} for p in ports],
                     "endpointPickerRef": {"name": name + "-epp", "port": {"number": 9002}}}}


def resource_claim(name, device, pool="node-1", driver="gpu.nvidia.com", namespace="llm"):
    """A claim allocated one device <driver>/<pool>/<device>."""
    return {"kind": "ResourceClaim", "apiVersion": "resource.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {
                "deviceClassName": "gpu.nvidia.com", "count": 1}}]}},
            "status": {"allocation": {"devices": {"results": [
                {"request": "gpu", "driver": driver, "pool": pool, "device": device}]}}}}


def resource_slice(name, devices, pool="node-1", driver="gpu.nvidia.com"):
    """A slice publishing `devices` {device name: productName} as the NVIDIA driver does."""
    return {"kind": "ResourceSlice", "apiVersion": "resource.k8s.io/v1",
            "metadata": {"name": name},
            "spec": {"driver": driver, "nodeName": pool, "pool": {"name": pool, "generation": 1,
                                                                   "resourceSliceCount": 1},
                     "devices": [{"name": d, "attributes": {
                         "type": {"string": "gpu"}, "productName": {"string": product},
                         "uuid": {"string": "GPU-" + d}},
                         "capacity": {"memory": {"value": "80Gi"}}}
                         for d, product in devices.items()]}}


def inference_objective(name, pool, priority, model=None, namespace="llm"):
    md = {"name": name, "namespace": namespace}
    if model:
        md["annotations"] = {"tokenway.io/model": model}
    return {"kind": "InferenceObjective", "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
            "metadata": md, "spec": {"priority": priority, "poolRef": {"name": pool}}}


def _status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class FakeKubeApi:
    """The cluster state plus a server; `start()`/`stop()` can be repeated (a restart)."""

    def __init__(self, cert_dir, tokens=("token-1",), client_certs=False, port=0,
                 bookmark_interval=0.5):
        self.cert_dir = cert_dir
        self.tokens = set(tokens)  # accepted bearer tokens; empty: client certificates
        self.client_certs = client_certs
        self.port = port
        self.bookmark_interval = bookmark_interval
        self.lock = threading.Condition()
        self.rv = 100
        self.objects = {"pods": {}, "inferencepools": {}, "resourceclaims": {},
                        "resourceslices": {}, "inferenceobjectives": {}}  # kind -> key -> obj
        self.history = []  # (rv, kind, type, obj)
        self.oldest_rv = 0  # watches from before this get 410
        self.forbidden = False
        self.silent = False  # accept watches but send nothing at all
        self.gone_in_stream = True  # 410 as an ERROR event (else as the HTTP status)
        self.injections = []  # raw byte strings for the next watch writes
        self.seen_tokens = []
        self.requests = []  # (method, path) in order
        self.lists = 0
        self.watches = 0
        self.generation = 0  # bumped by stop(): streams of an older one end
        self.server = None
        self.thread = None
        self.page_size_seen = []

    # ---- state -----------------------------------------------------------------------------

    def _key(self, obj):
        return obj["metadata"].get("namespace", "") + "/" + obj["metadata"]["name"]

    def _record(self, kind, etype, obj):
        self.rv += 1
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["resourceVersion"] = str(self.rv)
        if etype == "DELETED":
            self.objects[kind].pop(self._key(obj), None)
        else:
            self.objects[kind][self._key(obj)] = obj
        self.history.append((self.rv, kind, etype, obj))
        self.lock.notify_all()

    def put(self, kind, obj):
        with self.lock:
            etype = "MODIFIED" if self._key(obj) in self.objects[kind] else "ADDED"
            self._record(kind, etype, obj)

    def delete(self, kind, namespace, name):
        with self.lock:
            obj = self.objects[kind].get(namespace + "/" + name)
            if obj is not None:
                self._record(kind, "DELETED", obj)

    def compact(self):
        """Forgets the history: every watch from an older resourceVersion gets 410."""
        with self.lock:
            self.rv += 1  # compaction moves the clock, so the last list's version is too old
            self.oldest_rv = self.rv
            self.history = []

    def inject(self, raw):
        with self.lock:
            self.injections.append(raw)
            self.lock.notify_all()

    def drop_watches(self):
        """Ends every open watch stream (clients reconnect)."""
        with self.lock:
            self.generation += 1
            self.lock.notify_all()

    # ---- server ----------------------------------------------------------------------------

    def start(self):
        api = self
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(self.cert_dir, "server.crt"),
                            os.path.join(self.cert_dir, "server.key"))
        if self.client_certs:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(os.path.join(self.cert_dir, "ca.crt"))

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def get_request(self):
                sock, addr = self.socket.accept()
                sock.settimeout(10)
                try:
                    tls = ctx.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError):
                    sock.close()
                    raise
                tls.settimeout(None)
                return tls, addr

            def handle_error(self, request, client_address):
                pass  # a client that went away, a failed handshake: normal here

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                api._serve(self)

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        self.drop_watches()

    # ---- requests --------------------------------------------------------------------------

    def _send_json(self, h, code, obj):
        body = json.dumps(obj).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(body)
        h.close_connection = True

    def _serve(self, h):
        url = urllib.parse.urlsplit(h.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        with self.lock:
            self.requests.append(("WATCH" if q.get("watch") else "LIST", h.path))
        if self.client_certs:
            if not h.connection.getpeercert():
                return self._send_json(h, 401, _status(401, "Unauthorized", "Unauthorized"))
        else:
            auth = h.headers.get("Authorization", "")
            token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
            with self.lock:
                self.seen_tokens.append(token)
            if token not in self.tokens:
                return self._send_json(h, 401, _status(401, "Unauthorized", "Unauthorized"))
        parts = url.path.split("/")
        if url.path.startswith("/api/v1/namespaces/") and len(parts) == 6 and parts[5] == "pods":
            kind, ns = "pods", parts[4]
        elif url.path.startswith(POOLS_PREFIX) and len(parts) == 7 and parts[6] == "inferencepools":
            kind, ns = "inferencepools", parts[5]
        elif (url.path.startswith("/apis/resource.k8s.io/v1/namespaces/") and len(parts) == 7
              and parts[6] == "resourceclaims"):
            kind, ns = "resourceclaims", parts[5]
        elif (url.path.startswith("/apis/inference.networking.x-k8s.io/v1alpha2/namespaces/")
              and len(parts) == 7 and parts[6] == "inferenceobjectives"):
            kind, ns = "inferenceobjectives", parts[5]
        elif url.path == "/apis/resource.k8s.io/v1/resourceslices":
            kind, ns = "resourceslices", None
        else:
            return self._send_json(h, 404, _status(404, "NotFound", "the server could not find "
                                                   "the requested resource"))
        if self.forbidden:
            return self._send_json(h, 403, _status(
                403, "Forbidden", f'{kind} is forbidden: User "system:serviceaccount:llm:'
                f'tokenway" cannot {"watch" if q.get("watch") else "list"} resource "{kind}" '
                f'in API group "" in the namespace "{ns}"'))
        match = self._matcher(ns, q)
        if q.get("watch") in ("1", "true"):
            return self._watch(h, kind, match, q)
        return self._list(h, kind, match, q)

    def _matcher(self, ns, q):
        labels = {}
        for part in filter(None, q.get("labelSelector", "").split(",")):
            k, _, v = part.partition("=")
            labels[k] = v
        name = None
        fs = q.get("fieldSelector", "")
        if fs.startswith("metadata.name="):
            name = fs[len("metadata.name="):]

        def match(obj):
            md = obj["metadata"]
            if (ns is not None and md.get("namespace") != ns) or (name is not None and md["name"] != name):
                return False
            return all(md.get("labels", {}).get(k) == v for k, v in labels.items())
        return match

    def _list(self, h, kind, match, q):
        limit = int(q.get("limit", "0") or 0)
        self.page_size_seen.append(limit)
        with self.lock:
            self.lists += 1
            if "continue" in q:
                start, rv = q["continue"].split(":")
                start = int(start)
            else:
                start, rv = 0, str(self.rv)
            items = sorted((o for o in self.objects[kind].values() if match(o)),
                           key=lambda o: o["metadata"]["name"])
        page = items[start:start + limit] if limit else items[start:]
        md = {"resourceVersion": rv}
        if limit and start + limit < len(items):
            md["continue"] = f"{start + limit}:{rv}"
        self._send_json(h, 200, {"kind": "List", "apiVersion": "v1", "metadata": md,
                                 "items": page})

    def _watch(self, h, kind, match, q):
        rv = int(q.get("resourceVersion") or 0)
        with self.lock:
            self.watches += 1
            expired = rv < self.oldest_rv
            gen = self.generation
        if expired and not self.gone_in_stream:
            return self._send_json(h, 410, _status(410, "Expired", f"too old resource version: "
                                                   f"{rv} ({self.oldest_rv})"))
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

        def chunk(data):
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            h.wfile.flush()

        try:
            if expired:
                chunk(json.dumps({"type": "ERROR", "object": _status(
                    410, "Expired", f"too old resource version: {rv} ({self.oldest_rv})")})
                    .encode() + b"\n")
                chunk(b"")
                return
            sent_rv = rv
            last_bookmark = time.time()
            while True:
                with self.lock:
                    if self.generation != gen or self.server is None:
                        return
                    silent = self.silent
                    if silent:
                        self.lock.wait(0.2)
                        continue
                    events = [(r, t, o) for (r, k, t, o) in self.history
                              if k == kind and r > sent_rv and match(o)]
                    later = [r for (r, k, t, o) in self.history if r > sent_rv]
                    injections, self.injections = self.injections, []
                    # The version a bookmark may claim: what this pass has seen, not what was
                    # recorded while it waited (those events go out on the next pass).
                    current_rv = self.rv
                    if not events and not injections:
                        self.lock.wait(0.1)
                for raw in injections:
                    chunk(raw)
                for r, t, o in events:
                    line = json.dumps({"type": t, "object": o}).encode() + b"\n"
                    # Chunk boundaries need not match events: split each line in two.
                    cut = len(line) // 3
                    chunk(line[:cut])
                    chunk(line[cut:])
                if events:
                    sent_rv = max(r for r, _, _ in events)
                elif later:
                    sent_rv = max(later)
                if self.bookmark_interval and time.time() - last_bookmark > self.bookmark_interval:
                    last_bookmark = time.time()
                    sent_rv = max(sent_rv, current_rv)
                    chunk(json.dumps({"type": "BOOKMARK", "object": {
                        "kind": "Pod" if kind == "pods" else "InferencePool",
                        "apiVersion": "v1", "metadata": {"resourceVersion": str(sent_rv)}}})
                        .encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError, OSError, ValueError):
            return
        finally:
            h.close_connection = True


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
