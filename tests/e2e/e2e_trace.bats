#!/usr/bin/env bats
# Seeing inside (issue 6): utcp run --trace and --pcap, utcp trace,
# utcp ss -i, utcp diagram. Each test runs in its own `utcp sandbox`; the
# files it leaves in $BATS_TEST_TMPDIR are checked afterwards, outside.

load helpers

setup() {
	need_sandbox
	need_build
}

teardown() {
	e2e_teardown
}

# transitions FILE: the "FROM → TO" of a text trace, one per line.
transitions() {
	grep -oE '[A-Z12-]+ → [A-Z12-]+' "$1"
}

# segments PCAP: "src flags" of every TCP segment, in order (tshark).
segments() {
	tshark -r "$1" -T fields -e ip.src -e tcp.flags.str 2>/dev/null |
		sed 's/·//g; s/ //g; s/\t/ /'
}

@test "a server that closes first: the trace shows SYN-SENT → ESTABLISHED → CLOSE-WAIT → LAST-ACK → CLOSED, and the pcap the same segments" {
	run -0 in_sandbox <<'EOF'
mkdir "$WORK/www"
random_file "$WORK/www/blob" 1
# python's http.server speaks HTTP/1.0 and closes after each reply.
"$PY" -m http.server --bind "$KERNEL" --directory "$WORK/www" 8000 \
	>"$WORK/server.log" 2>&1 &
wait_for 10 curl -s -o /dev/null "http://$KERNEL:8000/"
utcp run --trace-file "$WORK/trace.txt" --pcap "$WORK/cap.pcap" -- \
	curl -sS --max-time 30 --http1.0 -o "$WORK/got" "http://$KERNEL:8000/blob"
same_sha "$WORK/www/blob" "$WORK/got"
EOF
	assert_output --partial "sha256 match"
	run -0 cat "$BATS_TEST_TMPDIR/trace.txt"
	# the calls, strace-like, with the result and the duration
	assert_output --regexp "curl\[[0-9]+\] sock [0-9]+  socket\(AF_INET, SOCK_STREAM[^)]*\) = [0-9]+  [0-9.]+ ms"
	assert_output --regexp "connect\([0-9]+, 198\.18\.0\.1:8000\) = (0|-1 EINPROGRESS \(Operation now in progress\))  [0-9.]+ ms"
	assert_output --regexp "CLOSED → SYN-SENT  connect\(\)"
	assert_output --regexp "SYN-SENT → ESTABLISHED  rcvd SYN\|ACK"
	run -0 transitions "$BATS_TEST_TMPDIR/trace.txt"
	assert_output "CLOSED → SYN-SENT
SYN-SENT → ESTABLISHED
ESTABLISHED → CLOSE-WAIT
CLOSE-WAIT → LAST-ACK
LAST-ACK → CLOSED"
	# The same story on the wire: handshake, the kernel's FIN first,
	# then ours, and the kernel's ACK of it last.
	run -0 segments "$BATS_TEST_TMPDIR/cap.pcap"
	assert_line --index 0 "198.18.0.2 S"
	assert_line --index 1 "198.18.0.1 AS"
	assert_line --index 2 "198.18.0.2 A"
	fins=$(grep -n 'F' <<<"$output" | cut -d ' ' -f 1)
	assert_equal "$(wc -l <<<"$fins")" 2
	[[ $(sed -n 1p <<<"$fins") == *"198.18.0.1" ]] || fail "first FIN not the kernel's: $fins"
	[[ $(sed -n 2p <<<"$fins") == *"198.18.0.2" ]] || fail "second FIN not ours: $fins"
	assert_line --index $((${#lines[@]} - 1)) "198.18.0.1 A"
}

@test "a client that closes first: FIN-WAIT-1 → FIN-WAIT-2 → TIME-WAIT, in a JSON trace that parses line by line, and in the pcap" {
	run -0 in_sandbox <<'EOF'
start_httpd --bind "$KERNEL"
utcp run --trace-format json --trace-file "$WORK/trace.json" \
	--pcap "$WORK/cap.pcap" -- \
	curl -sS --max-time 30 -o "$WORK/got" "http://$KERNEL:$HTTPD_PORT/blob?size=100000&seed=3"
echo "got $(stat -c %s "$WORK/got") bytes"
EOF
	assert_output --partial "got 100000 bytes"
	trace=$BATS_TEST_TMPDIR/trace.json
	# every line is one JSON object (acceptance 5), with the stable keys
	while IFS= read -r line; do
		run -0 "$PY" -m json.tool <<<"$line"
	done <"$trace"
	run -0 "$PY" - "$trace" <<'EOF'
import json, sys
states = []
for n, line in enumerate(open(sys.argv[1]), 1):
    o = json.loads(line)
    for k in ("t", "pid", "sock", "kind"):
        assert k in o, "line %d has no %r: %s" % (n, k, line)
    if o["kind"] == "state":
        states.append("%s>%s" % (o["from"], o["to"]))
        assert o["cause"], line
print(" ".join(states))
EOF
	assert_output "CLOSED>SYN-SENT SYN-SENT>ESTABLISHED ESTABLISHED>FIN-WAIT-1 FIN-WAIT-1>FIN-WAIT-2 FIN-WAIT-2>TIME-WAIT"
	run -0 segments "$BATS_TEST_TMPDIR/cap.pcap"
	assert_line --index 0 "198.18.0.2 S"
	fins=$(grep -n 'F' <<<"$output" | cut -d ' ' -f 1)
	[[ $(sed -n 1p <<<"$fins") == *"198.18.0.2" ]] || fail "first FIN not ours: $fins"
	# TIME-WAIT's ACK of the kernel's FIN is the capture's last segment
	assert_line --index $((${#lines[@]} - 1)) "198.18.0.2 A"
}

@test "tshark reads the pcap of a 4 MiB download: no malformed packet, no bad checksum, and the payload is what curl moved" {
	need tshark
	run -0 in_sandbox <<'EOF'
start_httpd --bind "$KERNEL"
utcp run --pcap "$WORK/cap.pcap" -- curl -sS --max-time 60 -o "$WORK/got" \
	-w 'curl: received %{size_header} %{size_download} sent %{size_request}\n' \
	"http://$KERNEL:$HTTPD_PORT/blob?size=4194304&seed=9"
EOF
	read -r hdr body sent < <(match "curl: received ([0-9]+ [0-9]+ sent [0-9]+)" | sed 's/sent //')
	((body == 4194304)) || fail "curl got $body bytes"
	pcap=$BATS_TEST_TMPDIR/cap.pcap
	run -0 tshark -r "$pcap" -o tcp.check_checksum:TRUE \
		-o ip.check_checksum:TRUE -z expert -q
	refute_output --partial "Malformed"
	refute_output --regexp "[Bb]ad checksum|[Cc]hecksum.*incorrect"
	refute_output --partial "Errors ("
	# Payload bytes once each (a retransmission would count twice).
	sum() {
		tshark -r "$pcap" -Y "ip.src == $1 && tcp.len > 0 && !tcp.analysis.retransmission" \
			-T fields -e tcp.len 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'
	}
	assert_equal "$(sum 198.18.0.1)" $((hdr + body))
	assert_equal "$(sum 198.18.0.2)" "$sent"
}

@test "while iperf3 runs under utcp run, utcp ss -i shows its connection ESTABLISHED with rtt, cwnd and the process" {
	need iperf3
	run -0 in_sandbox <<'EOF'
iperf3 -s -B "$KERNEL" -p 5201 -1 >"$WORK/iperf-server.log" 2>&1 &
listening() { ss -Htln 'sport = :5201' | grep -q .; }
wait_for 10 listening
utcp run -- iperf3 -c "$KERNEL" -p 5201 -t 4 >"$WORK/iperf.log" 2>&1 &
client=$!
seen=
for _ in $(seq 100); do
	out=$(utcp ss -i state established)
	# a row of iperf3's, and its details line with rtt > 0 and cwnd > 0
	if awk '/iperf3/ { row = 1; next }
		row && /rtt:/ {
			match($0, /rtt:[0-9.]+/); rtt = substr($0, RSTART + 4, RLENGTH - 4)
			match($0, /cwnd:[0-9]+/); cwnd = substr($0, RSTART + 5, RLENGTH - 5)
			if (rtt + 0 > 0 && cwnd + 0 > 0) ok = 1
		}
		{ row = 0 }
		END { exit !ok }' <<<"$out"; then
		seen=$out
		break
	fi
	sleep 0.1
done
wait "$client"
echo "$seen"
[[ -n $seen ]]
EOF
	assert_line --regexp "^ESTAB +[0-9]+ +[0-9]+ +198\.18\.0\.2:[0-9]+ +198\.18\.0\.1:5201 +[0-9]+,iperf3\$"
	assert_output --regexp "	 .*rto:[0-9]+ rtt:[0-9.]+/[0-9.]+ mss:[0-9]+ .*cwnd:[1-9][0-9]* .*bytes_sent:[0-9]+ bytes_acked:[0-9]+ bytes_received:[0-9]+ .*retrans:[0-9]+/[0-9]+"
}

@test "utcp diagram renders an SVG and a PNG whose highlighted edges are exactly the trace's transitions" {
	need dot
	run -0 in_sandbox <<'EOF'
start_httpd --bind "$KERNEL"
utcp run --trace-format json --trace-file "$WORK/trace.json" -- \
	curl -sS --max-time 30 -o /dev/null "http://$KERNEL:$HTTPD_PORT/blob?size=1000"
# and a refused connection: SYN-SENT → CLOSED, off the RFC's figure
utcp run --trace-format json --trace-file "$WORK/refused.json" -- \
	curl -sS --max-time 10 "http://$KERNEL:1/" || true
cat "$WORK/refused.json" >>"$WORK/trace.json"
EOF
	cd "$BATS_TEST_TMPDIR"
	run -0 utcp diagram --from trace.json -o states.svg
	run -0 utcp diagram --from trace.json -o states.png
	run -0 utcp diagram --from trace.json -o states.dot
	run -0 "$PY" - <<'EOF'
import html, json, re
want = set()
for line in open("trace.json"):
    o = json.loads(line)
    if o["kind"] == "state":
        want.add((o["from"], o["to"]))
svg = open("states.svg").read()
assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
got = set()
for m in re.finditer(r'<g id="taken_([^"]*)" class="edge taken"', svg):
    a, b = html.unescape(m.group(1)).split("_")
    got.add((a, b))
assert got == want, "highlighted %s, trace %s" % (sorted(got), sorted(want))
png = open("states.png", "rb").read()
assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000, len(png)
dot = open("states.dot").read()
assert dot.count('class="taken"') == len(want)
for s in ("CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED",
          "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK",
          "TIME-WAIT"):
    assert 'id="state_%s"' % s in dot, s
print("highlighted:", " ".join("%s>%s" % e for e in sorted(got)))
EOF
	assert_output --partial "CLOSED>SYN-SENT"
	assert_output --partial "SYN-SENT>CLOSED"
	assert_output --partial "FIN-WAIT-2>TIME-WAIT"
}

@test "a refused connect: the trace shows the RST received, the error and the call's errno" {
	run -0 in_sandbox <<'EOF'
rc=0
utcp run --trace-file "$WORK/trace.txt" -- curl -sS --max-time 10 "http://$KERNEL:1/" || rc=$?
echo "curl exit $rc"
cat "$WORK/trace.txt"
EOF
	assert_output --partial "curl exit 7"
	assert_output --regexp "RST received  rcvd RST"
	assert_output --regexp "SYN-SENT → CLOSED"
	assert_output --regexp "error ECONNREFUSED \(Connection refused\)"
	assert_output --regexp "getsockopt\([0-9]+, SOL_SOCKET, SO_ERROR, \[111\]\) = 0"
}

@test "utcp trace follows a running daemon live, and --pid keeps one process's sockets" {
	run -0 in_sandbox <<'EOF'
start_httpd --bind "$KERNEL"
url="http://$KERNEL:$HTTPD_PORT/blob?size=10"
utcp trace --json -o "$WORK/all.json" 2>"$WORK/all.err" &
all=$!
wait_for 10 grep -q following "$WORK/all.err"
# a process whose pid is known before it makes its socket
utcp run -- sh -c 'echo $$ >"$0.pid"; until [ -e "$0.go" ]; do sleep 0.05; done
	exec curl -sS --max-time 10 -o /dev/null "$1"' "$WORK/one" "$url" &
first=$!
wait_for 10 test -s "$WORK/one.pid"
pid=$(cat "$WORK/one.pid")
utcp trace --json --pid "$pid" -o "$WORK/one.json" 2>"$WORK/one.err" &
one=$!
wait_for 10 grep -q following "$WORK/one.err"
touch "$WORK/one.go"
utcp run -- curl -sS --max-time 10 -o /dev/null "$url" # another pid
wait "$first"
# both clients closed first: wait for their TIME-WAIT before stopping
two_timewaits() { [ "$(grep -c '"to":"TIME-WAIT"' "$WORK/all.json")" -ge 2 ]; }
wait_for 10 two_timewaits
kill -INT "$all" "$one"
wait "$all" "$one"
"$PY" - "$WORK/all.json" "$WORK/one.json" "$pid" <<'PY'
import json, sys
def read(path):
    return [json.loads(line) for line in open(path)]
every, one, pid = read(sys.argv[1]), read(sys.argv[2]), int(sys.argv[3])
print("all: pids", len({o["pid"] for o in every if o["kind"] == "state"}),
      "kinds", " ".join(sorted({o["kind"] for o in every})))
print("one: pids", " ".join(sorted({str(o["pid"] == pid) for o in one})),
      "states", " ".join("%s>%s" % (o["from"], o["to"])
                         for o in one if o["kind"] == "state"))
PY
EOF
	assert_output --regexp "all: pids 2 kinds .*state"
	assert_output --partial "one: pids True states CLOSED>SYN-SENT SYN-SENT>ESTABLISHED ESTABLISHED>FIN-WAIT-1 FIN-WAIT-1>FIN-WAIT-2 FIN-WAIT-2>TIME-WAIT"
}

@test "tracing changes nothing: a traced, captured 16 MiB download is intact" {
	run -0 in_sandbox <<'EOF'
random_file "$WORK/blob" 16
start_httpd --bind "$KERNEL" --file "$WORK/blob"
utcp run --trace-file "$WORK/trace.txt" --pcap "$WORK/cap.pcap" -- \
	curl -sS --max-time 60 -o "$WORK/got" "http://$KERNEL:$HTTPD_PORT/blob"
same_sha "$WORK/blob" "$WORK/got"
echo "pcap $(stat -c %s "$WORK/cap.pcap") bytes"
grep -c 'trace messages lost' "$WORK/trace.txt" || true
EOF
	assert_output --partial "sha256 match"
	size=$(match "pcap ([0-9]+) bytes")
	((size > 16 * 1024 * 1024)) || fail "the capture has only $size bytes"
	refute_output --partial "lost"
}

@test "--pcap-max caps the capture and says how much it left out" {
	run -0 in_sandbox <<'EOF'
start_httpd --bind "$KERNEL"
utcp run --pcap "$WORK/cap.pcap" --pcap-max 100k -- \
	curl -sS --max-time 30 -o /dev/null "http://$KERNEL:$HTTPD_PORT/blob?size=1048576" 2>&1
echo "pcap $(stat -c %s "$WORK/cap.pcap") bytes"
EOF
	assert_output --regexp "reached --pcap-max: [0-9]+ packets were not written"
	size=$(match "pcap ([0-9]+) bytes")
	((size <= 100 * 1024)) || fail "the capture has $size bytes"
	if command -v tshark >/dev/null; then
		run -0 tshark -r "$BATS_TEST_TMPDIR/cap.pcap" -q -z io,stat,0
	fi
}

@test "utcpd --pcap captures everything that crosses the TUN" {
	need tshark
	# the daemon under test (the sanitizer pass sets UTCPD), with --pcap
	printf '#!/bin/sh\nexec "%s" --pcap "%s" "$@"\n' "${UTCPD:-$UTCP_BUILD/utcpd}" \
		"$BATS_TEST_TMPDIR/daemon.pcap" >"$BATS_TEST_TMPDIR/utcpd-pcap"
	chmod +x "$BATS_TEST_TMPDIR/utcpd-pcap"
	export UTCPD=$BATS_TEST_TMPDIR/utcpd-pcap
	run -0 in_sandbox <<'EOF'
start_httpd --bind "$KERNEL"
utcp run -- curl -sS --max-time 30 -o /dev/null "http://$KERNEL:$HTTPD_PORT/blob?size=20000"
utcp run -- curl -sS --max-time 30 -o /dev/null "http://$KERNEL:$HTTPD_PORT/blob?size=20000"
EOF
	run -0 segments "$BATS_TEST_TMPDIR/daemon.pcap"
	syns=$(grep -c '^198\.18\.0\.2 S$' <<<"$output")
	assert_equal "$syns" 2
	run -0 tshark -r "$BATS_TEST_TMPDIR/daemon.pcap" -o tcp.check_checksum:TRUE \
		-o ip.check_checksum:TRUE -z expert -q
	refute_output --partial "Malformed"
}

@test "utcp stat names every drop reason, and -d says what each counts" {
	run -0 in_sandbox <<'EOF'
utcp stat -a -d 'drop_*'
EOF
	assert_line --regexp "^drop_tcp_bad_checksum +0  dropped: bad TCP checksum\$"
	assert_line --regexp "^drop_out_of_window +0  dropped: segment outside receive window\$"
	n=$(grep -c '^drop_' <<<"$output")
	((n >= 20)) || fail "only $n drop counters"
}
