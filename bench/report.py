#!/usr/bin/python3
"""bench/report.py RAW META OUTDIR — the table of bench/run.

RAW: one figure a line: workload, set-up, run, value (or "n/a"), note
(tab-separated). META: "key<TAB>value" lines (the machine, the options,
"setup:<name>" descriptions). Prints the table; writes OUTDIR/<date>-<host>
.md (the table, the machine, the method), .png (gnuplot) and .tsv (RAW).
"""
import math
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
    "unix-pp-p50": ("AF_UNIX socketpair ping-pong 64 B, round trip p50",
                    "µs", "lo"),
    "unix-tput": ("AF_UNIX socketpair, 64 KiB writes", "GB/s", "hi"),
    "file-write": ("file write(), 4 KiB blocks, tmpfs", "MB/s", "hi"),
    "file-read": ("file read(), 4 KiB blocks, tmpfs", "MB/s", "hi"),
}
SETUPS = ["kernel", "utcp-c", "utcp-s", "utcp-bp-c", "utcp-bp-s", "slirp-c",
          "slirp-s", "pasta-c", "pasta-s", "libc", "preload"]
SETUP_LABEL = {
    "kernel": "kernel veth",
    "utcp-c": "utcp, app = client",
    "utcp-s": "utcp, app = server",
    "utcp-bp-c": "utcp --busy-poll, client",
    "utcp-bp-s": "utcp --busy-poll, server",
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
    "unix-pp-p50": "AF_UNIX\\nping-pong",
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
            wl, setup, run, value = parts[:4]
            note = parts[4] if len(parts) > 4 else ""
            fig = figures.setdefault((wl, setup),
                                     {"values": [], "notes": [], "info": "",
                                      "by_run": {}})
            if value == "n/a":
                fig["notes"].append(note or "failed")
            else:
                fig["values"].append(float(value))
                fig["by_run"][run] = float(value)
                fig["info"] = note
    return figures


# The preload's cost on calls it passes through (bench/run, wl_local):
# timed pairs of runs, and instructions per call (localcost.py).
LOCAL = ["unix-pp-p50", "unix-tput", "file-write", "file-read"]
INSN = {"unix-pp-p50": "insn-unix-pp", "unix-tput": "insn-unix-tput",
        "file-write": "insn-file-write", "file-read": "insn-file-read"}
TARGET = 0.01  # "within 1 % of without it" (issue 7)


def median_interval(xs, level=0.95):
    """The median of xs and a distribution-free interval for it: order
    statistics k and n+1-k, with k the largest for which the binomial
    (n, 1/2) leaves at most (1 - level) / 2 on each side. Assumes only
    that the xs are independent draws of one distribution. Returns
    (median, lo, hi, coverage); with fewer than 6 values no k reaches 95 %:
    then min and max, and the coverage they have."""
    xs = sorted(xs)
    n = len(xs)
    tail, k = 0.0, 0  # tail = P(B <= k - 1)
    while k < n // 2:
        nxt = tail + math.comb(n, k) / 2 ** n
        if nxt > (1 - level) / 2:
            break
        tail, k = nxt, k + 1
    k = max(k, 1)
    tail = sum(math.comb(n, i) for i in range(k)) / 2 ** n
    return statistics.median(xs), xs[k - 1], xs[n - k], 1 - 2 * tail


def local_stats(figures):
    """{workload: {...}}: time with the preload ÷ time without, within
    each pair of back-to-back runs (a rate's ratio inverted), their median
    and its interval, and the verdict against TARGET."""
    out = {}
    for wl in LOCAL:
        a = figures.get((wl, "libc"), {}).get("by_run", {})
        b = figures.get((wl, "preload"), {}).get("by_run", {})
        pairs = sorted(set(a) & set(b), key=int)
        if not pairs:
            continue
        if WORKLOADS[wl][2] == "lo":  # a time already
            ratios = [b[p] / a[p] for p in pairs if a[p] > 0]
        else:
            ratios = [a[p] / b[p] for p in pairs if b[p] > 0]
        if not ratios:
            continue
        med, lo, hi, cov = median_interval(ratios)
        if cov < 0.95:
            verdict = "too few pairs for a 95 % interval (6 at least)"
        elif lo >= 1 - TARGET and hi <= 1 + TARGET:
            verdict = "within 1 %"
        elif lo > 1 + TARGET:
            verdict = "slower by more than 1 %"
        elif hi <= 1 + TARGET:
            # The target bounds a cost: the upper end settles it. A
            # preload cannot make I/O faster; an interval below 0.99
            # is the set-up's drift between the two runs of a pair.
            verdict = ("costs at most 1 % (the interval reaches below "
                       "0.99: drift between the runs of a pair)")
        else:
            verdict = "not resolved: the interval reaches past 1.01"
        out[wl] = {"n": len(ratios), "median": med, "lo": lo, "hi": hi,
                   "coverage": cov, "verdict": verdict}
    return out


def insn_stats(figures):
    """{workload: {libc, preload, ours, added, frac}} per call, from the
    valgrind counts, or {note} when they failed."""
    out = {}
    for wl in LOCAL:
        key = INSN[wl]
        vals = {}
        note = ""
        for s in ("libc", "preload", "in-libutcp"):
            fig = figures.get((key, s))
            if fig is None:
                continue
            if fig["values"]:
                vals[s] = fig["values"][-1]
            elif fig["notes"]:
                note = fig["notes"][-1]
        if "libc" in vals and "preload" in vals:
            added = vals["preload"] - vals["libc"]
            out[wl] = {"libc": vals["libc"], "preload": vals["preload"],
                       "ours": vals.get("in-libutcp"), "added": added,
                       "frac": added / vals["libc"] if vals["libc"] else None}
        elif note:
            out[wl] = {"note": note}
    return out


def pct(r):
    return f"{(r - 1) * 100:+.1f} %"


def local_lines(stats, insns, md):
    """The preload-cost section: a table (Markdown) or lines (text)."""
    if not stats and not insns:
        return []
    head = ["workload", "pairs", "time with ÷ without (median of pairs)",
            "interval on the median (its coverage)", "verdict", "user instructions per call "
            "without → with", "added (in libutcp.so)", "added ÷ without"]
    rows = []
    for wl in LOCAL:
        if wl not in stats and wl not in insns:
            continue
        st, ins = stats.get(wl), insns.get(wl, {})
        cells = [WORKLOADS[wl][0]]
        if st:
            cells += [str(st["n"]),
                      f"{st['median']:.3f} ({pct(st['median'])})",
                      f"{st['lo']:.3f}–{st['hi']:.3f} "
                      f"({st['coverage'] * 100:.1f} %)", st["verdict"]]
        else:
            cells += ["0", "n/a", "", ""]
        if "added" in ins:
            ours = "" if ins["ours"] is None else f" ({ins['ours']:.1f})"
            cells += [f"{ins['libc']:.1f} → {ins['preload']:.1f}",
                      f"{ins['added']:.1f}{ours}",
                      f"{ins['frac'] * 100:.0f} %"
                      if ins["frac"] is not None else ""]
        else:
            cells += [f"n/a: {ins['note']}" if "note" in ins else "", "", ""]
        rows.append(cells)
    if md:
        out = ["| " + " | ".join(head) + " |",
               "|---|--:|--:|---|---|--:|--:|--:|"]
        out += ["| " + " | ".join(md_escape(c) for c in r) + " |"
                for r in rows]
        return out
    out = ["The preload's cost on AF_UNIX and file I/O (target: within 1 %)"]
    for r in rows:
        out.append(f"  {r[0]}")
        if r[1] != "0":
            out.append(f"    time with ÷ without: {r[2]} over {r[1]} pairs, "
                       f"interval {r[3]}: {r[4]}")
        if r[5].startswith("n/a"):
            out.append(f"    user-space instructions per call: {r[5]}")
        elif r[5]:
            added = r[6].replace(" (", " (in libutcp.so ")
            out.append(f"    user-space instructions per call: {r[5]}, "
                       f"added {added}" + (f" = {r[7]}" if r[7] else ""))
    return out


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
            x_base = m / base if m is not None and base else None
            if s in ("libc", "preload"):
                note = ""
                st = local_stats(figures).get(wl)
                if s == "preload" and st:
                    # The median of the ratios within pairs, in the
                    # figure's own sense (a rate: the time ratio inverted).
                    x_base = (st["median"] if better == "lo"
                              else 1 / st["median"])
                    note = (f"{st['n']} pairs, time ÷ without "
                            f"{st['median']:.3f}, interval {st['lo']:.3f}–"
                            f"{st['hi']:.3f}: {st['verdict']}")
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
                "x_base": x_base,
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


def chart(rows, meta, png, work, local=None):
    """Five panels: throughput, latency, connection rate, memory, preload
    (local: local_stats())."""
    by = {(r["wl"], r["setup"]): r for r in rows}
    local_st = local or {}

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
    net = ["kernel", "utcp-c", "utcp-s", "utcp-bp-c", "utcp-bp-s", "slirp-c",
           "slirp-s", "pasta-c", "pasta-s"]
    for i, (title, wls, scale) in enumerate(spec):
        sets = present(wls, net)
        if not sets:
            continue
        panels.append((title, data(f"p{i}.dat", wls, sets), sets, scale))
    if local_st:
        # Speed with the preload ÷ without it: the median of the pairs
        # and its 95 % interval (the time ratio inverted). 1.00 is no
        # cost, below it slower.
        def rel(r):
            st = local_st.get(r["wl"])
            if st is None:
                return (0, 0, 0)
            return (1 / st["median"], 1 / st["hi"], 1 / st["lo"])
        wls = [wl for wl in LOCAL if wl in local_st]
        panels.append(("Speed with libutcp.so ÷ without, median of pairs "
                       "and its interval, ≥ 95 % (1.00: no cost)",
                       data("p9.dat", wls, ["preload"], rel),
                       ["preload"], "ratio"))
    if not panels:
        return False
    colors = {"kernel": "#4d4d4d", "utcp-c": "#d62728", "utcp-s": "#ff9896",
              "utcp-bp-c": "#9467bd", "utcp-bp-s": "#c5b0d5",
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
        elif scale == "ratio":
            # Zoomed on 1.00, where a 1 % cost shows.
            g += ['unset logscale y', 'set yrange [*<0.95:1.05<*]']
        else:
            g += ['unset logscale y', 'set yrange [0:*]']
        g.append('unset arrow')
        if scale == "ratio":
            g.append('set arrow from graph 0, first 1 to graph 1, first 1 '
                     'nohead dt 2 lw 2')
            for y in (0.99, 1.01):  # the 1 % target
                g.append(f'set arrow from graph 0, first {y} to graph 1, '
                         f'first {y} nohead dt 3 lw 1 lc rgb "#2ca02c"')
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
    figures = load(raw)
    rows = summarise(figures)
    local, insns = local_stats(figures), insn_stats(figures)
    table = text_table(rows)
    print(table)
    if local or insns:
        print("\n" + "\n".join(local_lines(local, insns, md=False)))

    base = f"{meta.get('date', 'undated')[:10]}-{meta.get('host', 'host')}"
    md = os.path.join(outdir, base + ".md")
    png = os.path.join(outdir, base + ".png")
    tsv = os.path.join(outdir, base + ".tsv")
    if not os.path.exists(tsv) or not os.path.samefile(raw, tsv):
        shutil.copyfile(raw, tsv)
    have_png = chart(rows, meta, png, os.path.dirname(raw), local)

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
    if local or insns:
        lines += ["## The preload's cost on AF_UNIX and file I/O", "",
                  "Time: pairs of short runs without and with "
                  "LD_PRELOAD=libutcp.so, back to back, pinned to one CPU; "
                  "each run's figure is the median of its batches; the ratio "
                  "is taken within each pair, then the median of the ratios "
                  "with a distribution-free interval (order statistics; at "
                  "least 95 % coverage from 6 pairs on, its own in the table). "
                  "\"Within 1 %\" only when that interval lies inside "
                  "0.99–1.01.",
                  "Instructions: valgrind (callgrind) counts of the same "
                  "loops at two fixed lengths; the difference cancels the "
                  "start-up. User space only: the kernel's side of each "
                  "call, most of its time, is not counted, so \"added ÷ "
                  "without\" is an upper bound of the relative cost in "
                  "instructions. bench/README.md says more.", "",
                  *local_lines(local, insns, md=True), ""]
    if have_png:
        lines += [f"![chart]({os.path.basename(png)})", ""]
    lines += [f"Raw figures, one a run: `{base}.tsv`.", ""]
    with open(md, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print(f"\nbench: wrote {md}" + (f" and {png}" if have_png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
