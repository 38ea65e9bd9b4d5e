#!/usr/bin/env python3
"""Fails when a source file includes a header from a folder above its own (docs/architecture.md,
"Layout and layering").

The layers, lowest first; a folder may include its own headers, the public interfaces in
include/tokenway/, and the folders of lower layers:

    common < http < {routing, governance, telemetry, payload, rollout, semantic, cache} < control < gateway < main

Within the routing/governance/telemetry/payload/rollout/semantic/cache layer the only allowed edges
are governance -> telemetry, payload -> telemetry, rollout -> telemetry, semantic -> telemetry,
cache -> telemetry (they render their metric families with telemetry's PrometheusText) and
cache -> semantic (the semantic cache compares prompts with semantic's text vectors). sim and bench sit beside
gateway: they may include every folder below gateway (and bench the simulator's headers), never
gateway or main, and only main may include them. include/tokenway/ includes nothing from src/.

Usage: layering_test.py [SOURCE_ROOT]   (default: the repository this file is in)
A self-test runs first: the checker must flag a planted upward include in a scratch tree.
"""
import os
import re
import sys
import tempfile

LAYERS = [
    ["common"],
    ["http"],
    ["routing", "governance", "telemetry", "payload", "rollout", "semantic", "cache"],
    ["control"],
    ["gateway"],
    ["main"],
]
SIBLING_EDGES = {("governance", "telemetry"), ("payload", "telemetry"), ("rollout", "telemetry"),
                 ("semantic", "telemetry"), ("cache", "telemetry"), ("cache", "semantic")}
BESIDE_GATEWAY = {"sim": set(), "bench": {"sim"}, "fleetsim": {"sim", "bench"}}  # folder -> extra folders it may include
INTERFACES = "tokenway"  # include/tokenway/: the public interfaces, includable from anywhere

INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"([^"]+)"', re.MULTILINE)
SOURCE_SUFFIXES = (".h", ".cc", ".cc.in")


def allowed_includes():
    """Folder -> set of folders its files may include."""
    rank = {f: i for i, layer in enumerate(LAYERS) for f in layer}
    below_gateway = {f for f, r in rank.items() if r < rank["gateway"]}
    allowed = {}
    for folder, r in rank.items():
        allowed[folder] = {f for f, s in rank.items() if s < r} | {folder, INTERFACES}
        allowed[folder] |= {b for (a, b) in SIBLING_EDGES if a == folder}
    for folder, extra in BESIDE_GATEWAY.items():
        allowed[folder] = below_gateway | extra | {folder, INTERFACES}
    allowed["main"] |= set(BESIDE_GATEWAY)
    allowed[INTERFACES] = {INTERFACES}
    return allowed


def source_files(root):
    """(folder, path) of every source file under src/ and include/tokenway/."""
    for base, folder_of in ((os.path.join(root, "src"), None),
                            (os.path.join(root, "include", INTERFACES), INTERFACES)):
        for dirpath, _, names in os.walk(base):
            for name in sorted(names):
                if not name.endswith(SOURCE_SUFFIXES):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, base).split(os.sep)
                folder = folder_of or (rel[0] if len(rel) > 1 else "")
                yield folder, path


def violations(root):
    allowed = allowed_includes()
    known = set(allowed)
    found = []
    for folder, path in source_files(root):
        rel_path = os.path.relpath(path, root)
        if folder not in allowed:
            found.append(f"{rel_path}: folder '{folder}' has no place in the layering; "
                         "add it to tests/layering_test.py and docs/architecture.md")
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for match in INCLUDE.finditer(text):
            target = match.group(1)
            if "/" not in target:
                continue
            top = target.split("/", 1)[0]
            if top not in known or top in allowed[folder]:
                continue
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"{rel_path}:{line}: {folder}/ must not include \"{target}\" "
                         f"({top}/ is not below {folder}/)")
    return found


def self_test():
    """The checker must flag upward and sideways includes and accept downward ones."""
    with tempfile.TemporaryDirectory() as root:
        files = {
            "src/common/a.h": '#include "common/b.h"\n',
            "src/routing/r.cc": '#include "routing/r.h"\n#include "control/config.h"\n',
            "src/telemetry/t.cc": '#include "governance/g.h"\n',
            "src/governance/g.cc": '#include "telemetry/prometheus_text.h"\n',
            "src/gateway/x.cc": '#include "sim/tokenizer.h"\n#include "control/runtime.h"\n',
            "src/bench/w.cc": '#include "sim/engine.h"\n#include "gateway/worker.h"\n',
            "src/main/m.cc": '#include "gateway/gateway.h"\n#include "bench/report.h"\n',
            "include/tokenway/p.h": '#include "routing/endpoint_state.h"\n',
        }
        for rel, text in files.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        got = sorted(v.split(": ")[0] for v in violations(root))
        want = sorted(["src/routing/r.cc:2", "src/telemetry/t.cc:1", "src/gateway/x.cc:1",
                       "src/bench/w.cc:2", "include/tokenway/p.h:1"])
        if got != want:
            print(f"self-test failed: flagged {got}, expected {want}")
            return False
    return True


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))
    if not self_test():
        return 1
    found = violations(root)
    for v in found:
        print(v)
    if found:
        print(f"{len(found)} include(s) point up the layering")
        return 1
    print("layering: every include points down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
