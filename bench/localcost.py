#!/usr/bin/python3
"""bench/localcost.py — user-space instructions per read()/write() call of
the ubench local commands, without and with LD_PRELOAD=libutcp.so, counted
by valgrind (callgrind): a figure that a busy machine cannot move.

  localcost.py WORKDIR PRELOAD N1 N2 TEST [ARG...] -- PREFIX...

runs `PREFIX... [env LD_PRELOAD=PRELOAD] valgrind --tool=callgrind
UBENCH TEST ARG... xN` for N = N1 and N2, each without and with the
preload (PREFIX ends with the ubench path; valgrind goes before it).
The difference between the two counts cancels the start-up (the dynamic
loader, the preload's constructor): what is left is the loop. Prints one
line per figure, tab-separated, for bench/run's raw file:

  insn-TEST  libc|preload  1  INSTRUCTIONS-PER-CALL  note
  insn-TEST  in-libutcp    1  INSTRUCTIONS-PER-CALL  (self cost of libutcp.so)

A call is one read() or write() the program made (ubench counts them and
prints "calls N"); both processes of the unix tests are counted. On
failure: the same lines with "n/a" and why. valgrind counts user space
only: the kernel's side of each call is not in these figures.
"""
import glob
import os
import re
import subprocess
import sys

# Callgrind output ("Callgrind Format Specification"): ob=/fn= name the
# object and function the following cost lines belong to; a calls= line
# makes the next cost line the inclusive cost of that call (not self).
# Names are given once, by ob= or cob= (one id space), then by id alone.
NAME_RE = re.compile(r"^(c?ob)=\((\d+)\)(?: (.*))?$")


def self_cost_by_object(path):
    """{object path: self Ir} of one callgrind output file."""
    names = {}
    obj = "?"
    skip_next = False
    cost = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            c = line[:1]
            if c.isdigit() or c in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) >= 2:
                    cost[obj] = cost.get(obj, 0) + int(parts[1])
                continue
            if line.startswith("calls="):
                skip_next = True
                continue
            m = NAME_RE.match(line.rstrip("\n"))
            if m:
                if m.group(3) is not None:
                    names[m.group(2)] = m.group(3)
                if m.group(1) == "ob":
                    obj = names.get(m.group(2), "?")
    return cost


def run(work, prefix, env, test, args, n):
    """(total Ir, Ir inside libutcp.so, calls) of one counted run."""
    for old in glob.glob(os.path.join(work, "callgrind.out.*")):
        os.unlink(old)
    ubench, pre = prefix[-1], prefix[:-1]
    cmd = pre + env + ["valgrind", "--tool=callgrind",
                       "--callgrind-out-file=" +
                       os.path.join(work, "callgrind.out.%p"),
                       ubench, test] + args + [f"x{n}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       check=False)
    calls = [int(m) for m in re.findall(r"^calls (\d+)$", r.stdout, re.M)]
    outs = glob.glob(os.path.join(work, "callgrind.out.*"))
    if r.returncode != 0 or not calls or not outs:
        err = [ln for ln in r.stderr.splitlines()
               if ln.strip() and not ln.startswith("==")]
        why = (err or r.stderr.splitlines() or ["no output"])[-1]
        raise RuntimeError(f"valgrind: exit {r.returncode}: {why[:100]}")
    total = ours = 0
    for path in outs:
        for obj, ir in self_cost_by_object(path).items():
            total += ir
            if os.path.basename(obj) == "libutcp.so":
                ours += ir
    return total, ours, sum(calls)


def main():
    argv = sys.argv[1:]
    if "--" not in argv or len(argv[:argv.index("--")]) < 5:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    sep = argv.index("--")
    work, preload, n1, n2, test = argv[:5]
    args, prefix = argv[5:sep], argv[sep + 1:]
    n1, n2 = int(n1), int(n2)
    label = f"insn-{test}"
    try:
        per_call = {}
        for mode, env in (("libc", []),
                          ("preload", ["env", f"LD_PRELOAD={preload}"])):
            t1, o1, c1 = run(work, prefix, env, test, args, n1)
            t2, o2, c2 = run(work, prefix, env, test, args, n2)
            per_call[mode] = ((t2 - t1) / (c2 - c1), (o2 - o1) / (c2 - c1))
            print(f"{label}\t{mode}\t1\t{per_call[mode][0]:.3f}\t"
                  f"valgrind Ir, ({t2:,} - {t1:,}) / ({c2:,} - {c1:,}) "
                  f"calls, runs of x{n2} and x{n1}")
        print(f"{label}\tin-libutcp\t1\t{per_call['preload'][1]:.3f}\t"
              "self Ir of libutcp.so per call")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        for mode in ("libc", "preload", "in-libutcp"):
            print(f"{label}\t{mode}\t1\tn/a\t{e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
