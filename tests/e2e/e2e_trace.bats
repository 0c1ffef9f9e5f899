#!/usr/bin/env bats
# Seeing inside (issue 6): utcp run --trace and --pcap, utcp trace,
# utcp ss -i, utcp diagram. Each test runs in its own `utcp sandbox`; the
# files it leaves in $BATS_TEST_TMPDIR are checked afterwards, outside.

load helpers

setup_file() {
	# the program of the vanished-peer cases (e2e_keepalive.bats's)
	command -v cc >/dev/null 2>&1 || return 0 # need_ka skips or fails
	KA=$BATS_FILE_TMPDIR/ka
	cc -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE \
		-o "$KA" "$BATS_TEST_DIRNAME/fixtures/ka.c"
	export KA
}

setup() {
	need_sandbox
	need_build
}

need_ka() {
	need cc nft
	[[ -x ${KA:-} ]] || fail "tests/e2e/fixtures/ka.c did not build"
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

# utcpd_with ARGS...: a daemon under test (the sanitizer pass sets UTCPD)
# with ARGS added; `utcp sandbox` starts it.
utcpd_with() {
	local q
	printf -v q ' %q' "$@"
	printf '#!/bin/sh\nexec "%s"%s "$@"\n' "${UTCPD:-$UTCP_BUILD/utcpd}" "$q" \
		>"$BATS_TEST_TMPDIR/utcpd-with"
	chmod +x "$BATS_TEST_TMPDIR/utcpd-with"
	export UTCPD=$BATS_TEST_TMPDIR/utcpd-with
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
	# (a FIN resent on a busy machine, by timeout or loss probe, is
	# still the same FIN)
	fins=$(grep 'F' <<<"$output" | cut -d ' ' -f 1 | uniq)
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
	utcpd_with --pcap "$BATS_TEST_TMPDIR/daemon.pcap"
	run -0 in_sandbox <<'EOF'
start_httpd --bind "$KERNEL"
utcp run -- curl -sS --max-time 30 -o /dev/null "http://$KERNEL:$HTTPD_PORT/blob?size=20000"
utcp run -- curl -sS --max-time 30 -o /dev/null "http://$KERNEL:$HTTPD_PORT/blob?size=20000"
utcp stat -a 'daemon_tun_*' 'daemon_pcap_*'
EOF
	rx=$(match "daemon_tun_rx +([0-9]+)")
	tx=$(match "daemon_tun_tx +([0-9]+)")
	written=$(match "daemon_pcap_packets +([0-9]+)")
	# every packet read from or written to the TUN so far, and nothing else
	assert_equal "$written" $((rx + tx))
	assert_line --regexp "^daemon_pcap_skipped +0$"
	pcap=$BATS_TEST_TMPDIR/daemon.pcap
	run -0 segments "$pcap"
	((${#lines[@]} >= written)) || fail "${#lines[@]} segments in the file, $written counted"
	# both directions: our SYNs, the kernel's SYN|ACKs
	assert_equal "$(grep -c '^198\.18\.0\.2 S$' <<<"$output")" 2
	assert_equal "$(grep -c '^198\.18\.0\.1 AS$' <<<"$output")" 2
	# both bodies, once each
	run -0 tshark -r "$pcap" -Y "ip.src == 198.18.0.1 && tcp.len > 0 && !tcp.analysis.retransmission" \
		-T fields -e tcp.len
	(($(awk '{ s += $1 } END { print s + 0 }' <<<"$output") > 40000)) || fail "bodies missing"
	if command -v tcpdump >/dev/null; then
		run -0 tcpdump -nr "$pcap"
		assert_line --regexp "IP 198\.18\.0\.2\.[0-9]+ > 198\.18\.0\.1\.[0-9]+: Flags \[S\]"
	fi
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

@test "utcpd --pcap-max stops the daemon's capture at the cap, says so once, and the transfer is unharmed" {
	need tshark
	utcpd_with --pcap "$BATS_TEST_TMPDIR/daemon.pcap" --pcap-max 256k
	run -0 in_sandbox <<'EOF'
start_httpd --bind "$KERNEL"
utcp run -- curl -sS --max-time 30 -o "$WORK/got" "http://$KERNEL:$HTTPD_PORT/blob?size=4194304"
echo "got $(stat -c %s "$WORK/got") bytes"
utcp stat -a 'daemon_pcap_*'
EOF
	assert_output --partial "got 4194304 bytes"
	assert_line --regexp "^daemon_pcap_packets +[1-9][0-9]*$"
	assert_line --regexp "^daemon_pcap_skipped +[1-9][0-9]*$"
	size=$(stat -c %s "$BATS_TEST_TMPDIR/daemon.pcap")
	((size <= 256 * 1024)) || fail "the capture has $size bytes"
	# it stops at the first record that does not fit: less than one
	# record (16 + 65535 bytes at most) short of the cap
	((size > 256 * 1024 - 16 - 65535)) || fail "the capture stopped early: $size bytes"
	run -0 grep -c "reached --pcap-max" "$BATS_TEST_TMPDIR/utcpd.log"
	assert_output 1
	# whole records only: tshark reads it to the end without complaint
	run -0 tshark -r "$BATS_TEST_TMPDIR/daemon.pcap" -q -z io,stat,0
	refute_output --regexp "cut short|appears to be damaged"
}

@test "utcpd --pcap into a pipe nobody reads: packets are left out, never waited for" {
	fifo=$BATS_TEST_TMPDIR/cap.fifo
	mkfifo "$fifo"
	# both ends open here, and never read: the pipe fills after 64 KiB
	exec {keep}<>"$fifo"
	utcpd_with --pcap "$fifo"
	run -0 in_sandbox -t 60 <<'EOF'
start_httpd --bind "$KERNEL"
t0=$(now_ms)
utcp run -- curl -sS --max-time 30 -o "$WORK/got" "http://$KERNEL:$HTTPD_PORT/blob?size=4194304"
echo "got $(stat -c %s "$WORK/got") bytes in $(($(now_ms) - t0)) ms"
utcp stat -a 'daemon_pcap_*'
EOF
	exec {keep}>&-
	assert_output --partial "got 4194304 bytes"
	assert_line --regexp "^daemon_pcap_skipped +[1-9][0-9]*$"
	run -0 grep -c "the reader is not keeping up" "$BATS_TEST_TMPDIR/utcpd.log"
	assert_output 1
}

@test "a vanished peer under keepalive: utcp ss shows timer:(keepalive,…), the trace each probe, the RST sent with its reason and ETIMEDOUT" {
	need_ka
	run -0 in_sandbox -t 60 <<'EOF'
source "$FIXTURES/keepalive.bash"
ka_bg server "$KA" --greet --then sink listen "$KERNEL" 0
wait_line server '^port='
ka_bg client utcp run --trace-file "$WORK/trace.txt" -- "$KA" --keepalive 2,1,2 \
	--expect-greet connect "$KERNEL" "$(value server port)"
wait_line client '^ready'
utcp ss -i state established
cable_cut
ka_wait client 15
EOF
	# idle 2 s: the first probe is due within 2 s, none sent yet
	assert_output --regexp "timer:\(keepalive,([0-9]+ms|[12]\.[0-9]s|2s),0\)"
	assert_line --regexp "^client: recv=-1 errno=ETIMEDOUT"
	# the story in order: two probes, the abort's RST and why, the error
	run -0 bash -c "grep -oE 'keepalive probe [0-9]+|RST sent  .*|ESTABLISHED → CLOSED  .*|error ETIMEDOUT .*|recv\([0-9]+, [0-9]+\) = -1 ETIMEDOUT' \
		'$BATS_TEST_TMPDIR/trace.txt' | sed -E 's/^recv\([0-9]+,/recv(FD,/'"
	assert_output "keepalive probe 1
keepalive probe 2
RST sent  keepalive timeout
ESTABLISHED → CLOSED  keepalive timeout
error ETIMEDOUT (Connection timed out)  keepalive timeout
recv(FD, 4096) = -1 ETIMEDOUT"
}

@test "a cut cable under TCP_USER_TIMEOUT: utcp ss shows timer:(on,…,backoff), the trace each retransmission with its backoff, then the abort" {
	need_ka
	run -0 in_sandbox -t 60 <<'EOF'
source "$FIXTURES/keepalive.bash"
ka_bg server "$KA" --then sink listen "$KERNEL" 0
wait_line server '^port='
ka_bg client utcp run --trace-file "$WORK/trace.txt" -- "$KA" --user-timeout 3000 \
	--go "$WORK/go" --then write connect "$KERNEL" "$(value server port)"
wait_line client '^established'
cable_cut
touch "$WORK/go"
# the first retransmission comes one RTO (200 ms or more) after the write
backing_off() { utcp ss -i | grep -E 'timer:\(on,[0-9.]+m?s,[1-9]\)'; }
wait_for 5 backing_off
ka_wait client 15
EOF
	assert_output --regexp "unacked:[1-9][0-9]* .*timer:\(on,[0-9.]+m?s,[1-9]\)"
	assert_line --regexp "^client: write=-1 errno=ETIMEDOUT"
	trace=$BATS_TEST_TMPDIR/trace.txt
	run -0 grep -cE "retransmit seq [0-9]+  timeout \(backoff [0-9]+\)" "$trace"
	# each timeout doubles the RTO: backoff 1, 2, 3 within the 3 s
	run -0 bash -c "grep -oE 'retransmit .*backoff [0-9]+' '$trace' | grep -oE 'backoff [0-9]+' | uniq | head -n 3"
	assert_output "backoff 1
backoff 2
backoff 3"
	run -0 grep -E "ESTABLISHED → CLOSED  TCP_USER_TIMEOUT" "$trace"
	run -0 grep -E "error ETIMEDOUT \(Connection timed out\)  TCP_USER_TIMEOUT" "$trace"
}

@test "a peer that stops reading: the trace shows the zero-window stall, utcp ss timer:(persist,…)" {
	need_ka
	run -0 in_sandbox -t 60 <<'EOF'
source "$FIXTURES/keepalive.bash"
# the kernel's side accepts nothing and reads nothing
ka_bg server "$KA" --then hold listen "$KERNEL" 0
wait_line server '^port='
ka_bg client utcp run --trace-file "$WORK/trace.txt" -- "$KA" --for 3 --then fill \
	connect "$KERNEL" "$(value server port)"
wait_line client '^established'
stalled() { utcp ss -i | grep -E 'snd_wnd:0 .*timer:\(persist,[0-9.]+m?s,[0-9]+\)'; }
wait_for 10 stalled
ka_wait client 15
EOF
	assert_output --regexp "timer:\(persist,"
	assert_line --regexp "^client: fill bytes=[0-9]+ .*write still blocked"
	run -0 grep -E "zero-window probe [0-9]+  the peer's window is closed" \
		"$BATS_TEST_TMPDIR/trace.txt"
}

@test "utcp trace names a dropped packet's counter (a segment with a bad checksum), as utcp stat counts it" {
	run -0 in_sandbox <<'EOF'
utcp trace -o "$WORK/drop.txt" 2>"$WORK/text.err" &
text=$!
utcp trace --json -o "$WORK/drop.json" 2>"$WORK/json.err" &
json=$!
wait_for 10 grep -q following "$WORK/text.err"
wait_for 10 grep -q following "$WORK/json.err"
# A SYN to the engine whose TCP checksum is wrong on purpose (a raw
# socket: the kernel adds the IP header, leaves the TCP checksum alone).
"$PY" - "$ENGINE" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
syn = struct.pack("!HHIIBBHHH", 40000, 9, 1, 0, 5 << 4, 0x02, 65535, 0xdead, 0)
s.sendto(syn, (sys.argv[1], 0))
PY
counted() { utcp stat drop_tcp_bad_checksum | grep -q .; }
wait_for 10 counted
kill -INT "$text" "$json"
wait "$text" "$json"
cat "$WORK/drop.txt" "$WORK/drop.json"
utcp stat drop_tcp_bad_checksum
EOF
	assert_line --regexp "^ +[0-9.]+ -  drop drop_tcp_bad_checksum  dropped: bad TCP checksum$"
	assert_output --partial '"kind":"drop","counter":"drop_tcp_bad_checksum"'
	assert_line --regexp "^drop_tcp_bad_checksum +1$"
}

@test "the text trace is coloured on a terminal, plain in a file, in a pipe and with NO_COLOR" {
	need script
	run -0 in_sandbox <<'EOF'
start_httpd --bind "$KERNEL"
url="http://$KERNEL:$HTTPD_PORT/blob?size=10"
unset NO_COLOR
# script(1) gives the run a terminal
TERM=xterm script -qec "utcp run --trace -- curl -sS -o /dev/null '$url'" /dev/null \
	>"$WORK/tty.txt"
NO_COLOR=1 TERM=xterm script -qec "utcp run --trace -- curl -sS -o /dev/null '$url'" \
	/dev/null >"$WORK/nocolor.txt"
utcp run --trace -- curl -sS -o /dev/null "$url" 2>"$WORK/pipe.txt"
utcp run --trace-file "$WORK/file.txt" -- curl -sS -o /dev/null "$url"
for f in tty nocolor pipe file; do
	echo "$f: $(grep -c ' → ' "$WORK/$f.txt") transitions," \
		"$(grep -c $'\e\\[' "$WORK/$f.txt") with colour"
done
EOF
	assert_line --regexp "^tty: [1-9][0-9]* transitions, [1-9][0-9]* with colour$"
	assert_line --regexp "^nocolor: [1-9][0-9]* transitions, 0 with colour$"
	assert_line --regexp "^pipe: [1-9][0-9]* transitions, 0 with colour$"
	assert_line --regexp "^file: [1-9][0-9]* transitions, 0 with colour$"
	# a state change in the state colour (cyan)
	run -0 grep -c $'\e\\[36mSYN-SENT → ESTABLISHED\e\\[0m' "$BATS_TEST_TMPDIR/tty.txt"
}

@test "utcp ss: -l lists listeners with their process, a state filter keeps that state, and TIME-WAIT shows timer:(timewait,…)" {
	run -0 in_sandbox <<'EOF'
start_httpd --bind "$KERNEL"
utcp run -- "$PY" -m http.server --bind "$ENGINE" 8080 >"$WORK/server.log" 2>&1 &
listening() { utcp ss -l | grep -q ':8080 '; }
wait_for 10 listening
# the client closes first: its socket stays in TIME-WAIT (2 MSL)
utcp run -- curl -sS -o /dev/null "http://$KERNEL:$HTTPD_PORT/blob?size=10"
utcp ss -l >"$WORK/listening"
utcp ss >"$WORK/default"
utcp ss -i state time-wait >"$WORK/time-wait"
utcp ss state established >"$WORK/established"
utcp ss -a exclude time-wait >"$WORK/excluded"
EOF
	cd "$BATS_TEST_TMPDIR"
	head='^State +Recv-Q +Send-Q +Local Address:Port +Peer Address:Port +Process$'
	tw='^TIME-WAIT +0 +0 +198\.18\.0\.2:[0-9]+ +198\.18\.0\.1:[0-9]+ +[0-9]+,curl$'
	# -l: the listener alone, with python's pid and command
	run -0 cat listening
	assert_equal "${#lines[@]}" 2
	assert_line --index 0 --regexp "$head"
	assert_line --index 1 --regexp "^LISTEN +0 +0 +[0-9.]+:8080 +[0-9.]+:\* +[0-9]+,python3$"
	# by default: connections (TIME-WAIT too), no listener
	run -0 cat default
	assert_equal "${#lines[@]}" 2
	assert_line --index 1 --regexp "$tw"
	# a state filter, with -i: the timer 2 MSL (60 s) runs down
	run -0 cat time-wait
	assert_equal "${#lines[@]}" 3
	assert_line --index 1 --regexp "$tw"
	assert_line --index 2 --regexp "	 .*timer:\(timewait,(5[0-9]|60)s\)$"
	run -0 cat established
	assert_equal "${#lines[@]}" 1
	assert_line --index 0 --regexp "$head"
	# -a less one state: the listener is left
	run -0 cat excluded
	assert_equal "${#lines[@]}" 2
	assert_line --index 1 --regexp "^LISTEN .*:8080 "
}
