#!/usr/bin/env bats
# utcpd --fault: the daemon's seeded fault injector between the TUN and the
# engine (tools/utcpd/fault.c). Through `utcp sandbox --fault SPEC`, 16 MiB
# must cross intact both ways under reordering, duplication and delay;
# the daemon_fault_* counters must show that the faults happened, and the
# engine's that it coped. Loss has its own test (e2e_loss.bats, nftables).

load helpers

setup() {
	need_sandbox
	need_build
}

teardown() {
	e2e_teardown
}

# transfer SPEC: 16 MiB from the kernel's server to curl under utcp run,
# then 16 MiB back, inside `utcp sandbox --fault SPEC`; prints the times
# and the counters.
transfer() {
	run -0 in_sandbox --fault "$1" <<'EOF'
random_file "$WORK/blob" 16
start_httpd --bind "$KERNEL" --file "$WORK/blob"
t0=$(now_ms)
utcp run -- curl -sS --max-time 60 -o "$WORK/got" "http://$KERNEL:$HTTPD_PORT/blob"
echo "download took $(($(now_ms) - t0)) ms"
same_sha "$WORK/blob" "$WORK/got"
t0=$(now_ms)
reply=$(utcp run -- curl -sS --max-time 60 -T "$WORK/blob" "http://$KERNEL:$HTTPD_PORT/upload")
echo "upload took $(($(now_ms) - t0)) ms"
if [[ $reply == "$(sha "$WORK/blob") $(stat -c %s "$WORK/blob")" ]]; then
	echo "upload intact"
fi
utcp stat -a 'daemon_fault_*' tcp_ooo_queued tcp_retransmit drop_out_of_window
EOF
	assert_output --partial "sha256 match"
	assert_output --partial "upload intact"
}

@test "a bad --fault SPEC is refused, naming the bad key or value" {
	run -2 utcpd --fault 'reorder=5%,dleay=20'
	assert_output --partial "unknown key 'dleay'"
	run -2 utcpd --fault 'loss=120%'
	assert_output --partial "bad loss '120%'"
	run -2 utcpd --fault 'delay=10,jitter=15'
	assert_output --partial "jitter=15 is more than delay=10"
	# the sandbox shows what the daemon said, and fails as a sandbox
	run -125 utcp sandbox --fault 'dup=many' -- true
	assert_output --partial "bad dup 'many'"
}

@test "16 MiB cross intact both ways with reorder=5%, and the engine queues out-of-order segments" {
	transfer "seed=1,reorder=5%"
	(($(match "daemon_fault_reordered +([0-9]+)") > 0)) || fail "nothing reordered"
	(($(match "tcp_ooo_queued +([0-9]+)") > 0)) || fail "the engine saw no out-of-order segment"
	assert_line --regexp "^daemon_fault_dropped +0$"
	assert_line --regexp "^daemon_fault_queue_full +0$"
}

@test "16 MiB cross intact both ways with dup=5%" {
	transfer "seed=2,dup=5%"
	(($(match "daemon_fault_duplicated +([0-9]+)") > 0)) || fail "nothing duplicated"
	# the second copy of a segment is old news: dropped (with an ACK)
	(($(match "drop_out_of_window +([0-9]+)") > 0)) || fail "the engine saw no duplicate"
	assert_line --regexp "^daemon_fault_reordered +0$"
}

@test "16 MiB cross intact both ways with delay=20,jitter=10, and the RTT shows it" {
	transfer "seed=3,delay=20,jitter=10"
	(($(match "daemon_fault_delayed +([0-9]+)") > 0)) || fail "nothing delayed"
	assert_line --regexp "^daemon_fault_queue_full +0$"
	# Each direction waits 10 to 30 ms: a round trip takes 20 ms at least.
	run -0 in_sandbox --fault "seed=3,delay=20,jitter=10" <<'EOF'
start_httpd --bind "$KERNEL"
utcp run -- curl -sS -o /dev/null -w 'connect took %{time_connect} s\n' \
	"http://$KERNEL:$HTTPD_PORT/blob?size=1000"
utcp ss -ai # closing, still in the table
EOF
	local connect_ms rtt_ms
	[[ $output =~ connect\ took\ ([0-9]+)\.([0-9]{3}) ]] || fail "no connect time"
	connect_ms=$((10#${BASH_REMATCH[1]} * 1000 + 10#${BASH_REMATCH[2]}))
	rtt_ms=$(match " rtt:([0-9]+)\.[0-9]+/")
	echo "connect took $connect_ms ms, the engine measured an RTT of $rtt_ms ms"
	((connect_ms >= 20)) || fail "the handshake took $connect_ms ms: no delay?"
	((rtt_ms >= 20)) || fail "RTT $rtt_ms ms: no delay?"
}

# A fixed exchange: 3 connections, 2000 bytes each way, then a close.
EXCHANGE='
rm -f "$WORK/srv.out" # the same WORK for both runs of a test
"$PY" -c "
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5555)); s.listen(1); print(flush=True)
for _ in range(3):
    c, _ = s.accept(); got = b\"\"
    while len(got) < 2000: got += c.recv(65536)
    c.sendall(b\"y\" * 2000)
    while c.recv(65536): pass
    c.close()
" "$KERNEL" >"$WORK/srv.out" & srv=$!
wait_for 10 test -s "$WORK/srv.out"
for i in 1 2 3; do
	utcp run -- "$PY" -c "
import socket, sys
s = socket.create_connection((sys.argv[1], 5555)); s.sendall(b\"x\" * 2000)
got = b\"\"
while len(got) < 2000: got += s.recv(65536)
s.shutdown(socket.SHUT_WR)
while s.recv(65536): pass
" "$KERNEL"
done
wait $srv
utcp stat -a "daemon_fault_*"
'

@test "the same seed gives the same faults for the same exchange" {
	# Loss and duplication only: how many packets reorder= holds back
	# depends on whether the next one comes before hold= ends, which is
	# timing (tests/unit/test_fault.c shows the decisions are the same).
	run -0 in_sandbox --fault "seed=3,dup=25%,loss=10%" <<<"$EXCHANGE"
	local first=$output
	(($(match "daemon_fault_dropped +([0-9]+)") > 0)) || fail "nothing dropped"
	(($(match "daemon_fault_duplicated +([0-9]+)") > 0)) || fail "nothing duplicated"
	run -0 in_sandbox --fault "seed=3,dup=25%,loss=10%" <<<"$EXCHANGE"
	echo "first run: $first"
	echo "second run: $output"
	[[ $(grep daemon_fault <<<"$first") == $(grep daemon_fault <<<"$output") ]] ||
		fail "the same seed gave different faults"
}
