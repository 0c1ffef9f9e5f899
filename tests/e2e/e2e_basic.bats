#!/usr/bin/env bats
# The end-to-end path of issue 2: a real program, libutcp.so, utcpd, the
# engine and a TUN device, each test in its own `utcp sandbox`.

load helpers

# The daemon's counter of engine sockets it has created (tools/utcpd).
SOCKETS_COUNTER=daemon_sockets_created

setup() {
	need_sandbox
	# The fresh-clone test builds its own; every other uses UTCP_BUILD's.
	[[ $BATS_TEST_DESCRIPTION == *"fresh clone"* ]] || need_build
}

teardown() {
	e2e_teardown
}

@test "curl through the engine fetches 16 MiB intact, and the kernel sees the engine as its peer" {
	run -0 in_sandbox <<'EOF'
random_file "$WORK/blob" 16
start_httpd --bind "$KERNEL" --file "$WORK/blob"
# delay_ms holds the connection open a moment so ss surely sees it.
utcp run -- curl -sS --max-time 60 -o "$WORK/got" \
	"http://$KERNEL:$HTTPD_PORT/blob?delay_ms=300" &
curl_pid=$!
line=
for _ in $(seq 200); do
	line=$(ss -Htan dst "$ENGINE" | head -n 1)
	[[ -n $line ]] && break
	sleep 0.02
done
echo "kernel's ss -tan: $line"
wait "$curl_pid"
same_sha "$WORK/blob" "$WORK/got"
echo "the kernel's server was reached from $(grep -m 1 '^conn ' "$HTTPD_LOG")"
EOF
	assert_output --partial "sha256 match"
	assert_output --regexp "reached from conn 198\.18\.0\.2:[0-9]+"
	# Local: the kernel's server; peer: the engine, across the TUN.
	assert_output --regexp "kernel's ss -tan: [A-Z-]+ +[0-9]+ +[0-9]+ +198\.18\.0\.1:[0-9]+ +198\.18\.0\.2:[0-9]+"
}

@test "curl through the engine uploads 16 MiB intact" {
	run -0 in_sandbox <<'EOF'
random_file "$WORK/up" 16
start_httpd --bind "$KERNEL"
reply=$(utcp run -- curl -sS --max-time 60 -T "$WORK/up" \
	"http://$KERNEL:$HTTPD_PORT/upload")
echo "server received: $reply"
echo "client sent:     $(sha "$WORK/up") $(stat -c %s "$WORK/up")"
[[ $reply == "$(sha "$WORK/up") $(stat -c %s "$WORK/up")" ]]
echo "upload intact"
echo "the kernel's server was reached from $(grep -m 1 '^conn ' "$HTTPD_LOG")"
EOF
	assert_output --partial "upload intact"
	assert_output --regexp "reached from conn 198\.18\.0\.2:[0-9]+"
}

@test "python's http.server under the preload serves 16 MiB intact to the kernel's curl" {
	run -0 in_sandbox <<'EOF'
mkdir "$WORK/www"
random_file "$WORK/www/blob" 16
utcp run -- "$PY" -m http.server --bind "$ENGINE" --directory "$WORK/www" 8080 \
	>"$WORK/server.log" 2>&1 &
server=$!
up_or_dead() {
	curl -s --max-time 2 -o /dev/null "http://$ENGINE:8080/" ||
		! kill -0 "$server" 2>/dev/null
}
wait_for 15 up_or_dead || true
if ! curl -s --max-time 2 -o /dev/null "http://$ENGINE:8080/"; then
	echo "the server under the preload does not answer:"
	cat "$WORK/server.log"
	exit 1
fi
curl -sS --max-time 60 -o "$WORK/got" "http://$ENGINE:8080/blob"
same_sha "$WORK/www/blob" "$WORK/got"
EOF
	assert_output --partial "sha256 match"
}

@test "AF_UNIX sockets stay with the kernel: curl --unix-socket works and the daemon never sees a socket" {
	run -0 in_sandbox <<'EOF'
start_httpd --unix "$WORK/http.sock"
utcp run -- curl -sS --max-time 20 --unix-socket "$WORK/http.sock" \
	-o "$WORK/got" "http://localhost/blob?size=1048576&seed=4"
want=$(curl -sS --unix-socket "$WORK/http.sock" "http://localhost/sha?size=1048576&seed=4")
[[ $(sha "$WORK/got") == "$want" ]]
echo "unix-socket fetch intact"
utcp stat -a
EOF
	assert_output --partial "unix-socket fetch intact"
	assert_line --regexp "^$SOCKETS_COUNTER +0\$"
}

@test "utcpd --busy-poll: serial requests find the daemon still polling, not asleep; without it, it never polls" {
	script='start_httpd --bind "$KERNEL"
for _ in $(seq 20); do
	utcp run -- curl -sS -o /dev/null "http://$KERNEL:$HTTPD_PORT/x"
done
utcp stat -a "daemon_wakeups" "daemon_busy_poll_*"'
	run -0 in_sandbox --busy-poll 2000 <<<"$script"
	found=$(match 'daemon_busy_poll_found +([0-9]+)')
	woke=$(match 'daemon_wakeups +([0-9]+)')
	echo "polling daemon: $found events found polling, $woke wakeups"
	((found >= 20)) || fail "only $found events found while polling"
	run -0 in_sandbox <<<"$script"
	assert_output --regexp "daemon_busy_poll_found +0"
	assert_output --regexp "daemon_busy_poll_idle +0"
	woke=$(match 'daemon_wakeups +([0-9]+)')
	((woke >= 20)) || fail "only $woke wakeups without polling"
	run -2 utcp sandbox --busy-poll 10001 -- true
	assert_output --partial "bad --busy-poll"
	run -2 "$UTCP_BUILD/utcpd" --busy-poll soon
	assert_output --partial "bad --busy-poll"
}

@test "UTCP_BUSY_POLL: a blocking receive polls, within its budget, before it sleeps; a non-blocking one never polls; a signal still interrupts it" {
	script='"$PY" "$FIXTURES/busy_wait.py" --serve 7300 >"$WORK/srv.out" &
wait_for 10 test -s "$WORK/srv.out"
echo "without: $(utcp run -- "$PY" "$FIXTURES/busy_wait.py" "$KERNEL" 7300)"
echo "with: $(UTCP_BUSY_POLL=10000 utcp run -- "$PY" "$FIXTURES/busy_wait.py" "$KERNEL" 7300)"
echo "flag: $(utcp run --busy-poll 10000 -- "$PY" "$FIXTURES/busy_wait.py" "$KERNEL" 7300)"'
	run -0 in_sandbox <<<"$script"
	# Without: the wait sleeps, no CPU to speak of.
	cpu=$(match 'without: blocking recv: cpu_ms=([0-9]+)')
	((cpu < 3)) || fail "a sleeping recv used $cpu ms of CPU"
	# With 10 ms: it polls (CPU), for no more than its budget of the
	# 300 ms wait, and a non-blocking recv returns at once.
	for how in with flag; do
		cpu=$(match "$how: blocking recv: cpu_ms=([0-9]+)")
		wall=$(match "$how: blocking recv: cpu_ms=[0-9.]+ wall_ms=([0-9]+)")
		nb=$(match "$how: .*non-blocking recv: wall_us=([0-9]+)")
		((cpu >= 3)) || fail "$how: only $cpu ms of CPU: no polling"
		((cpu <= 100)) || fail "$how: $cpu ms of CPU: it polled past its budget"
		((wall >= 250)) || fail "$how: the recv returned after $wall ms"
		((nb < 5000)) || fail "$how: a non-blocking recv took $nb µs"
	done
	# A signal that comes while the call polls still interrupts it (at
	# the end of the poll, not 300 ms later when the byte comes).
	for how in without with flag; do
		ms=$(match "$how: .*interrupted by signal after ([0-9]+) ms")
		((ms < 150)) || fail "$how: the signal took effect after $ms ms"
	done
	run -2 utcp run --busy-poll 10001 -- true
	assert_output --partial "bad --busy-poll"
}

@test "a closed port fails with 'Connection refused' (curl exit 7) in well under a second" {
	run -0 in_sandbox <<'EOF'
start=$(now_ms)
rc=0
# -v: Debian 12's curl names the errno (ECONNREFUSED) only in its
# verbose lines ("connect to … failed: Connection refused").
utcp run -- curl -sS -v --max-time 10 "http://$KERNEL:1/" || rc=$?
echo "curl exit $rc after $(($(now_ms) - start)) ms"
EOF
	assert_output --partial "failed: Connection refused"
	assert_output --regexp "curl exit 7 after [0-9]+ ms"
	ms=$(match "curl exit 7 after ([0-9]+) ms")
	((ms < 1000)) || fail "refused only after $ms ms"
}

@test "without a daemon the preload fails at once, with one stderr line naming the socket" {
	run -0 in_sandbox <<'EOF'
# A kernel-side server the program could reach if the preload silently
# fell back to the kernel: it must see no connection.
start_httpd --bind "$KERNEL"
sock=$WORK/no-daemon.sock
start=$(now_ms)
rc=0
UTCP_SOCKET=$sock LD_PRELOAD=${UTCP_PRELOAD:-$UTCP_BUILD/libutcp.so} \
	curl -sS --max-time 10 -o "$WORK/got" \
	"http://$KERNEL:$HTTPD_PORT/blob?size=100" 2>"$WORK/err" || rc=$?
ms=$(($(now_ms) - start))
sed 's/^/stderr: /' "$WORK/err"
echo "curl exit $rc after $ms ms"
echo "lines naming the socket $(grep -cF "$sock" "$WORK/err" || true)"
echo "lines not from curl $(grep -vc '^curl: ' "$WORK/err" || true)"
echo "connections the kernel served $(grep -c '^conn ' "$HTTPD_LOG" || true)"
EOF
	assert_output --regexp "curl exit [1-9][0-9]* after"
	assert_equal "$(match "lines naming the socket ([0-9]+)")" 1
	assert_equal "$(match "lines not from curl ([0-9]+)")" 1
	assert_equal "$(match "connections the kernel served ([0-9]+)")" 0
	ms=$(match "curl exit [0-9]+ after ([0-9]+) ms")
	((ms < 1000)) || fail "failed only after $ms ms"
}

@test "the README's demo command works on a fresh clone" {
	need git make cc
	git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1 ||
		prereq_missing "$REPO is not a git checkout"
	run -0 git clone -q "$REPO" "$BATS_TEST_TMPDIR/clone"
	cd "$BATS_TEST_TMPDIR/clone"
	# The README tells a fresh Debian 12 machine to run exactly this.
	run -0 grep -E '^ *(sudo )?tools/run-demo *$' README.md
	# Not the tests' own build or daemon: the clone's, built by the demo.
	run -0 timeout -k 10 900 env -u UTCPD -u UTCP_PRELOAD -u UTCP_SOCKET \
		-u UTCP_BUILD tools/run-demo 3>&-
	assert_output --partial "sha256 match"
	assert_output --regexp "198\.18\.0\.2:[0-9]+"
}
