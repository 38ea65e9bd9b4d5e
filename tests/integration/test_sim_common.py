"""Helpers shared by the tokenway-sim integration tests (not a test itself).

count_tokens re-implements the documented tokenizer rule (docs/simulator.md) independently of
the C++ code, so the tests check that usage.prompt_tokens follows the documented rule.
"""
import json
import os
import socket

import twtest

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "vllm")


def _is_alnum(c):
    return c.isascii() and c.isalnum()


def _is_space(c):
    return c in " \t\n\r\f\v"


def count_tokens(text):
    data = text.encode()
    n, i, count = len(data), 0, 0
    ch = [chr(b) if b < 0x80 else None for b in data]
    while i < n:
        c = ch[i]
        j = i
        if c == " " and i + 1 < n and ch[i + 1] is not None and _is_alnum(ch[i + 1]):
            j = i + 1
            while j < n and ch[j] is not None and _is_alnum(ch[j]):
                j += 1
        elif c is not None and _is_alnum(c):
            while j < n and ch[j] is not None and _is_alnum(ch[j]):
                j += 1
        elif c is not None and _is_space(c):
            while j < n and ch[j] is not None and _is_space(ch[j]):
                if ch[j] == " " and j > i and j + 1 < n and ch[j + 1] is not None and _is_alnum(ch[j + 1]):
                    break
                j += 1
        elif c is None:
            while j < n and ch[j] is None:
                j += 1
        else:
            j = i + 1
        count += (j - i + 7) // 8
        i = j
    return count


def chat_prompt_text(messages):
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages)


def load_fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


def load_stream_fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        blocks = [b for b in f.read().split("\n\n") if b.strip()]
    return [b[len("data: "):] for b in blocks]


def shape(value):
    """A value's structure: dict keys and JSON types, list element shapes, no concrete values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    return "string"


def finish_shape(value):
    """Like shape(), but finish_reason counts as string-or-null and content lists as one."""
    return json.dumps(shape(value), sort_keys=True)


def raw_exchange(port, data, read_timeout=5.0):
    """Sends raw bytes on a fresh connection and returns everything read until close/timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        s.close()


def chat(url, text="Hello there", max_tokens=8, model=MODEL, **extra):
    return twtest.post_json(url + "/v1/chat/completions",
                            twtest.chat_body(model, text, max_tokens, **extra))


def metric_value(text, name, **labels):
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric_name, _, label_text = head.partition("{")
        if metric_name != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total += float(value)
    return total


def metrics(url):
    _, _, body = twtest.request("GET", url + "/metrics")
    return body.decode()
