#!/usr/bin/python3
"""bench/report.py RAW META OUTDIR — the table of bench/run.

RAW: one figure a line: workload, set-up, run, value (or "n/a"), note
(tab-separated). META: "key<TAB>value" lines (the machine, the options,
"setup:<name>" descriptions). Prints the table; writes OUTDIR/<date>-<host>
.md (the table, the machine, the method), .png (gnuplot) and .tsv (RAW).
"""
import os
import shutil
import statistics
import subprocess
import sys

# workload: (label, unit, "hi" when higher is better, else "lo")
WORKLOADS = {
    "tput1-send": ("iperf3, 1 stream, app sends", "Gbit/s", "hi"),
    "tput1-recv": ("iperf3, 1 stream, app receives", "Gbit/s", "hi"),
    "tput4-send": ("iperf3, 4 streams, app sends", "Gbit/s", "hi"),
    "pp-avg": ("ping-pong 64 B, avg (sockperf)", "µs", "lo"),
    "pp-p50": ("ping-pong 64 B, p50 (sockperf)", "µs", "lo"),
    "pp-p99": ("ping-pong 64 B, p99 (sockperf)", "µs", "lo"),
    "crr": ("connect + 64 B request/answer + close", "conn/s", "hi"),
    "mem": ("daemon RSS per idle established connection", "KiB", "lo"),
    "unix-pp-avg": ("AF_UNIX socketpair ping-pong 64 B, avg", "µs", "lo"),
    "unix-tput": ("AF_UNIX socketpair, 64 KiB writes", "GB/s", "hi"),
    "file-write": ("file write(), 4 KiB blocks", "MB/s", "hi"),
    "file-read": ("file read(), 4 KiB blocks", "MB/s", "hi"),
}
SETUPS = ["kernel", "utcp-c", "utcp-s", "slirp-c", "slirp-s", "pasta-c",
          "pasta-s", "libc", "preload"]
SETUP_LABEL = {
    "kernel": "kernel veth",
    "utcp-c": "utcp, app = client",
    "utcp-s": "utcp, app = server",
    "slirp-c": "slirp4netns, ns -> host",
    "slirp-s": "slirp4netns, host -> ns",
    "pasta-c": "pasta, ns -> host",
    "pasta-s": "pasta, host -> ns",
    "libc": "without preload",
    "preload": "with libutcp.so",
}
PEERS = ["slirp-c", "slirp-s", "pasta-c", "pasta-s"]
TICK = {
    "tput1-send": "1 stream\\napp sends",
    "tput1-recv": "1 stream\\napp receives",
    "tput4-send": "4 streams\\napp sends",
    "pp-avg": "avg", "pp-p50": "p50", "pp-p99": "p99",
    "crr": "connect, request, close",
    "mem": "idle established connections",
    "unix-pp-avg": "AF_UNIX\\nping-pong",
    "unix-tput": "AF_UNIX\\nthroughput",
    "file-write": "file write", "file-read": "file read",
}


def fmt(v):
    """A figure with 3 significant digits, at least (and no exponent)."""
    if v is None:
        return "n/a"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def load(raw):
    figures = {}  # (workload, setup) -> {"values": [...], "notes": [...]}
    with open(raw, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 4:
                continue
            wl, setup, _run, value = parts[:4]
            note = parts[4] if len(parts) > 4 else ""
            fig = figures.setdefault((wl, setup),
                                     {"values": [], "notes": [], "info": ""})
            if value == "n/a":
                fig["notes"].append(note or "failed")
            else:
                fig["values"].append(float(value))
                fig["info"] = note
    return figures


def summarise(figures):
    rows = []
    for wl, (label, unit, better) in WORKLOADS.items():
        present = [s for s in SETUPS if (wl, s) in figures]
        if not present:
            continue
        med = {}
        for s in present:
            vals = figures[(wl, s)]["values"]
            med[s] = statistics.median(vals) if vals else None
        for s in present:
            fig = figures[(wl, s)]
            vals = fig["values"]
            m = med[s]
            base = None
            if s in ("libc", "preload"):
                base = med.get("libc")
            else:
                base = med.get("kernel")
            # The best peer of the same role (c: the app connects out,
            # s: the app is connected to) when there is one.
            role = s[-1] if s in PEERS or s.startswith("utcp-") else "c"
            cands = [med[p] for p in PEERS
                     if p in med and med[p] is not None and p[-1] == role]
            if not cands:
                cands = [med[p] for p in PEERS
                         if p in med and med[p] is not None]
            best = None
            if cands and s not in ("libc", "preload"):
                best = max(cands) if better == "hi" else min(cands)
            note = fig["info"]  # of the last run that gave a figure
            if fig["notes"]:
                n_fail = len(fig["notes"])
                note = fig["notes"][-1]
                if vals:
                    note = f"{n_fail} of {n_fail + len(vals)} runs failed: {note}"
            rows.append({
                "wl": wl, "label": label, "unit": unit, "better": better,
                "setup": s, "median": m,
                "min": min(vals) if vals else None,
                "max": max(vals) if vals else None,
                "runs": len(vals),
                "x_base": m / base if m is not None and base else None,
                "x_best": m / best if m is not None and best else None,
                "note": note,
            })
    return rows


def ratio(v):
    return "" if v is None else f"{v:.2f}"


def cells(r):
    spread = ("" if r["min"] is None
              else f"{fmt(r['min'])}–{fmt(r['max'])}")
    med = fmt(r["median"]) if r["median"] is not None else "n/a"
    return [SETUP_LABEL.get(r["setup"], r["setup"]), med, spread,
            ratio(r["x_base"]), ratio(r["x_best"]), r["note"]]


HEAD = ["set-up", "median", "min–max", "÷ kernel", "÷ best peer", "note"]


def text_table(rows):
    out = []
    widths = [26, 9, 19, 8, 11]
    line = "  ".join(h.ljust(w) if i < len(widths) else h
                     for i, (h, w) in enumerate(zip(HEAD, widths + [0])))
    out.append(line.rstrip())
    wl = None
    for r in rows:
        if r["wl"] != wl:
            wl = r["wl"]
            arrow = "higher is better" if r["better"] == "hi" else \
                "lower is better"
            out.append(f"{r['label']} ({r['unit']}, {arrow})")
        c = cells(r)
        parts = []
        for i, v in enumerate(c):
            if i == 0:
                parts.append(("  " + v).ljust(widths[0]))
            elif i < len(widths):
                parts.append(v.rjust(widths[i]) if i != 2
                             else v.ljust(widths[i]))
            else:
                parts.append(v)
        out.append("  ".join(parts).rstrip())
    return "\n".join(out)


def md_escape(s):
    return s.replace("|", "\\|")


def md_table(rows):
    out = ["| workload | " + " | ".join(HEAD) + " |",
           "|---|---|--:|---|--:|--:|---|"]
    wl = None
    for r in rows:
        first = ""
        if r["wl"] != wl:
            wl = r["wl"]
            arrow = "↑" if r["better"] == "hi" else "↓"
            first = f"{r['label']} ({r['unit']} {arrow})"
        out.append("| " + " | ".join(md_escape(x)
                                      for x in [first] + cells(r)) + " |")
    return "\n".join(out)


def chart(rows, meta, png, work):
    """Five panels: throughput, latency, connection rate, memory, preload."""
    by = {(r["wl"], r["setup"]): r for r in rows}

    def data(name, wls, setups,
             value=lambda r: (r["median"], r["min"], r["max"])):
        path = os.path.join(work, name)
        with open(path, "w", encoding="utf-8") as f:
            for wl in wls:
                cols = [f'"{TICK[wl]}"']
                for s in setups:
                    r = by.get((wl, s))
                    if r is None or r["median"] is None:
                        cols += ["?", "?", "?"]
                    else:
                        m, lo, hi = value(r)
                        cols += [f"{m:g}", f"{lo:g}", f"{hi:g}"]
                f.write(" ".join(cols) + "\n")
        return path

    def present(wls, setups):
        return [s for s in setups
                if any(by.get((w, s), {}).get("median") is not None
                       for w in wls)]

    panels = []
    spec = [
        ("Throughput (Gbit/s, higher is better)",
         ["tput1-send", "tput1-recv", "tput4-send"], ""),
        ("Ping-pong 64 B, sockperf (µs, log scale, lower is better)",
         ["pp-avg", "pp-p50", "pp-p99"], "log"),
        ("Connections per second (higher is better)", ["crr"], ""),
        ("RSS per idle connection (KiB, log scale, lower is better)",
         ["mem"], "log"),
    ]
    net = ["kernel", "utcp-c", "utcp-s", "slirp-c", "slirp-s", "pasta-c",
           "pasta-s"]
    for i, (title, wls, scale) in enumerate(spec):
        sets = present(wls, net)
        if not sets:
            continue
        panels.append((title, data(f"p{i}.dat", wls, sets), sets, scale))
    local = ["unix-pp-avg", "unix-tput", "file-write", "file-read"]
    if present(local, ["preload"]) and present(local, ["libc"]):
        # Speed with the preload ÷ without it (latency inverted): 1.00
        # is no cost, below it slower.
        def rel(r):
            b = by.get((r["wl"], "libc"))
            if b is None or not b["median"]:
                return (0, 0, 0)
            m = b["median"]
            if WORKLOADS[r["wl"]][2] == "lo":
                return (m / r["median"], m / r["max"], m / r["min"])
            return (r["median"] / m, r["min"] / m, r["max"] / m)
        panels.append(("Speed with libutcp.so ÷ without (1.00: no cost, "
                       "below: slower)",
                       data("p9.dat", local, ["preload"], rel),
                       ["preload"], "ratio"))
    if not panels:
        return False
    colors = {"kernel": "#4d4d4d", "utcp-c": "#d62728", "utcp-s": "#ff9896",
              "slirp-c": "#1f77b4", "slirp-s": "#aec7e8",
              "pasta-c": "#2ca02c", "pasta-s": "#98df8a",
              "preload": "#d62728"}
    nrows = len(panels) // 2 + 1  # and one slot for the legend
    g = [f'set terminal pngcairo size 1400,{340 * nrows} font ",10"',
         'set termoption noenhanced',
         f'set output "{png}"',
         'set datafile missing "?"',
         'set style data histogram',
         'set style histogram errorbars gap 1 lw 1',
         'set style fill solid 0.9 border -1',
         'set boxwidth 0.9',
         'unset key',
         'set bmargin 4',
         'set grid ytics',
         f'set multiplot layout {nrows},2 title '
         f'"utcp bench, {meta.get("date", "")}, {meta.get("host", "")}"']
    for title, path, sets, scale in panels:
        g.append(f'set title "{title}"')
        if scale == "log":
            g += ['set logscale y', 'set yrange [0.1:*]' if "KiB" in title
                  else 'set yrange [*:*]']
        else:
            g += ['unset logscale y', 'set yrange [0:*]']
        g.append('unset arrow')
        if scale == "ratio":
            g.append('set arrow from graph 0, first 1 to graph 1, first 1 '
                     'nohead dt 2 lw 2')
        plots = []
        for j, s in enumerate(sets):
            col = 2 + 3 * j
            xt = ":xtic(1)" if j == 0 else ""
            plots.append(f'"{path}" using {col}:{col + 1}:{col + 2}{xt} '
                         f'title "{SETUP_LABEL[s]}" lc rgb "{colors[s]}"')
        g.append("plot " + ", ".join(plots))
    # The legend, once, in a panel of its own.
    shown = [s for s in SETUPS if s in colors and
             any(s in sets for _t, _p, sets, _s in panels)]
    g += ['unset title', 'unset arrow', 'unset logscale y', 'unset border',
          'unset tics', 'unset grid', 'set xrange [0:1]', 'set yrange [0:1]',
          'set key center center vertical font ",11" samplen 3 spacing 1.4']
    g.append("plot " + ", ".join(
        f'NaN with boxes title "{SETUP_LABEL[s]}" lc rgb "{colors[s]}"'
        for s in shown))
    g.append("unset multiplot")
    script = os.path.join(work, "chart.gp")
    with open(script, "w", encoding="utf-8") as f:
        f.write("\n".join(g) + "\n")
    try:
        r = subprocess.run(["gnuplot", script], capture_output=True,
                           text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"bench: gnuplot: {e}", file=sys.stderr)
        return False
    if r.returncode != 0:
        print(f"bench: gnuplot: {r.stderr.strip()[-400:]}", file=sys.stderr)
        return False
    return True


def main():
    if len(sys.argv) != 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    raw, metafile, outdir = sys.argv[1:]
    meta = {}
    with open(metafile, encoding="utf-8") as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            meta[k] = v
    rows = summarise(load(raw))
    table = text_table(rows)
    print(table)

    base = f"{meta.get('date', 'undated')[:10]}-{meta.get('host', 'host')}"
    md = os.path.join(outdir, base + ".md")
    png = os.path.join(outdir, base + ".png")
    tsv = os.path.join(outdir, base + ".tsv")
    if not os.path.exists(tsv) or not os.path.samefile(raw, tsv):
        shutil.copyfile(raw, tsv)
    have_png = chart(rows, meta, png, os.path.dirname(raw))

    setups = [(k[6:], v) for k, v in meta.items() if k.startswith("setup:")]
    setups.sort(key=lambda kv: SETUPS.index(kv[0]) if kv[0] in SETUPS else 99)
    lines = [
        f"# utcp bench, {meta.get('date', '')}, {meta.get('host', '')}",
        "",
        "Made by `make bench` (bench/run"
        f"{' ' + meta['options'] if 'options' in meta else ''}).",
        "Each figure is the median of the runs and their spread (min–max);",
        "÷ kernel and ÷ best peer are ratios of medians from this same run",
        "(the best of slirp4netns and pasta in the same direction; for",
        "latency and memory lower is better, so a ratio above 1 is worse).",
        "The *app* is the program under test: in namespace A (kernel), under",
        "the preload (utcp), or in the namespace behind slirp4netns or pasta.",
        "sockperf's latency is half the round trip.",
        "",
        "## Machine",
        "",
    ]
    for k in ("cpu", "cores", "memory", "kernel", "debian", "load", "utcp",
              "utcp mtu", "tools", "duration", "stopped"):
        if k in meta:
            lines.append(f"- {k}: {meta[k]}")
    lines += ["", "## Set-ups", ""]
    for k, v in setups:
        lines.append(f"- {SETUP_LABEL.get(k, k)} (`{k}`): {v}")
    lines += ["", "## Results", "", md_table(rows), ""]
    if have_png:
        lines += [f"![chart]({os.path.basename(png)})", ""]
    lines += [f"Raw figures, one a run: `{base}.tsv`.", ""]
    with open(md, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print(f"\nbench: wrote {md}" + (f" and {png}" if have_png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
