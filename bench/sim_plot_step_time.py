#!/usr/bin/env python3
"""Plots tokenway-sim's decode step time vs batch size (docs/img/sim-step-time.svg).

Usage: bench/sim_plot_step_time.py BUILD_DIR/tokenway-sim [OUT.svg]
Runs `tokenway-sim --validate-json` (fake clock, no sockets), draws one line per context length
and the reference points of reference/serving-sim.md §3.6 as circles. Standard library only.
"""
import json
import subprocess
import sys

W, H = 720, 440
LEFT, RIGHT, TOP, BOTTOM = 70, 170, 40, 60
COLORS = {512: "#1f77b4", 1024: "#ff7f0e", 2048: "#2ca02c", 4096: "#d62728"}


def main():
    sim = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else "docs/img/sim-step-time.svg"
    data = json.loads(subprocess.check_output([sim, "--validate-json"]))
    points = [p for p in data["decode"] if p["fits"]]
    max_batch = max(p["batch"] for p in points)
    max_ms = max(p["step_ms"] for p in points) * 1.1

    def x(batch):
        return LEFT + batch / max_batch * (W - LEFT - RIGHT)

    def y(ms):
        return H - BOTTOM - ms / max_ms * (H - TOP - BOTTOM)

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2 - 60}" y="22" font-size="14">tokenway-sim {data["profile"]}: '
           'decode step time vs batch</text>']
    for ms in range(0, int(max_ms) + 1, 5):
        svg.append(f'<line x1="{LEFT}" y1="{y(ms):.1f}" x2="{W - RIGHT}" y2="{y(ms):.1f}" '
                   'stroke="#ddd"/>')
        svg.append(f'<text x="{LEFT - 8}" y="{y(ms) + 4:.1f}" text-anchor="end">{ms}</text>')
    for batch in (1, 32, 64, 128, 192, 256):
        svg.append(f'<text x="{x(batch):.1f}" y="{H - BOTTOM + 18}" '
                   f'text-anchor="middle">{batch}</text>')
    svg.append(f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" '
               'stroke="black"/>')
    svg.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" stroke="black"/>')
    svg.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 15}" text-anchor="middle">'
               'running sequences (batch)</text>')
    svg.append(f'<text x="18" y="{(TOP + H - BOTTOM) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 18 {(TOP + H - BOTTOM) / 2})">step time (ms)</text>')
    for i, (context, color) in enumerate(COLORS.items()):
        series = sorted((p["batch"], p["step_ms"]) for p in points if p["context"] == context)
        if not series:
            continue
        path = " ".join(f"{x(b):.1f},{y(ms):.1f}" for b, ms in series)
        svg.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for ref in data["reference"]:
            if ref["context"] == context:
                svg.append(f'<circle cx="{x(ref["batch"]):.1f}" cy="{y(ref["step_ms"]):.1f}" '
                           f'r="5" fill="none" stroke="{color}" stroke-width="1.5"/>')
        ly = TOP + 20 + 20 * i
        svg.append(f'<line x1="{W - RIGHT + 15}" y1="{ly}" x2="{W - RIGHT + 40}" y2="{ly}" '
                   f'stroke="{color}" stroke-width="2"/>')
        svg.append(f'<text x="{W - RIGHT + 46}" y="{ly + 4}">context {context}</text>')
    ly = TOP + 20 + 20 * len(COLORS)
    svg.append(f'<circle cx="{W - RIGHT + 27}" cy="{ly}" r="5" fill="none" stroke="black"/>')
    svg.append(f'<text x="{W - RIGHT + 46}" y="{ly + 4}">reference §3.6</text>')
    svg.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(svg) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
