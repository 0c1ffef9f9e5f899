#!/usr/bin/env bats
# The control protocol's asynchronous operations (tools/ipc.h, "Asynchronous
# operations"): socket(), connect() and accept() without a round trip to the
# daemon. A client that gets them wrong, by mistake or on purpose, costs its
# own socket only: counted, hung up, and the daemon stays in step and serves.

load helpers

setup() {
	need_sandbox
	need_build
	need ss
}

teardown() {
	e2e_teardown
}

@test "a lease gives ids of one's own; a socketpair named for one is adopted" {
	run -0 in_sandbox <<'EOF'
$PY "$FIXTURES/ctl_async.py" lease
EOF
	assert_line "caps async"
	assert_line "lease 0 64 fresh"
	assert_line "adopted ok"
	assert_line "still serving"
}

@test "ADOPT of an unleased id, a wrong name, a datagram socket, a foreign family, an id twice or no fd: refused, counted, hung up" {
	run -0 in_sandbox <<'EOF'
$PY "$FIXTURES/ctl_async.py" bad-adopt
EOF
	assert_line "unleased id hung up"
	assert_line "wrong name hung up"
	assert_line "datagram hung up"
	assert_line "AF_UNIX family hung up"
	assert_line "the same id again hung up"
	assert_line "adopt_failed +6"
	assert_line "first adoption ok"
	assert_line "still serving"
}

@test "unanswered CONNECT and ACCEPTED for ids nobody has: no answer, the stream stays in step; a CONNECT with a foreign fd fails its socket" {
	run -0 in_sandbox <<'EOF'
$PY "$FIXTURES/ctl_async.py" noreply
EOF
	assert_line "in step"
	assert_line "foreign fd: hung up SO_ERROR EBADF"
	assert_line "still serving"
}

@test "a server under the preload accepts 200 serial connections from the kernel, each pushed with its socket and peer" {
	run -0 in_sandbox <<'EOF'
cat >"$E2E_WORK/srv.py" <<'PY'
import socket, sys
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], 7300)); ls.listen(16)
print("listening", flush=True)
for i in range(200):
    c, peer = ls.accept()
    c.sendall(c.recv(64)); c.close()
print("served", i + 1, "last from", peer[0], flush=True)
PY
utcp run -- $PY "$E2E_WORK/srv.py" "$ENGINE" >"$E2E_WORK/srv.out" &
wait_for 10 grep -q listening "$E2E_WORK/srv.out"
$PY - <<PY
import socket
for i in range(200):
    s = socket.create_connection(("$ENGINE", 7300), timeout=5)
    s.sendall(b"ping %d" % i)
    assert s.recv(64) == b"ping %d" % i
    s.close()
print("client done")
PY
wait
sed "s/from $KERNEL\$/from the kernel/" "$E2E_WORK/srv.out"
utcp stat -a daemon_adopt_failed
EOF
	assert_line "client done"
	assert_line "served 200 last from the kernel"
	assert_line --regexp "^daemon_adopt_failed +0$"
}

@test "the protocol with round trips (SOCKET, CONNECT answered, LISTEN with tokens, ACCEPT) still serves a client that uses it" {
	# tests/e2e/fixtures/daemon_smoke.sh drives the daemon with
	# daemon_ctlclient, which speaks the protocol as a preload without
	# UTCP_CAP_ASYNC does, in a namespace of its own.
	run -0 timeout -k 10 300 "$FIXTURES/daemon_smoke.sh" "${UTCPD:-$UTCP_BUILD/utcpd}"
	assert_line --regexp "^daemon smoke: [0-9]+ passed, 0 failed$"
	assert_line --partial "engine listener receives 16 MiB intact"
	assert_line --partial "engine listener sends 16 MiB intact"
}
