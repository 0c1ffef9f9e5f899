#!/usr/bin/env bats
# Dead-peer detection end to end (issue 4, acceptance 2-5): a program under
# `utcp run` talks to a kernel socket across the TUN, then nftables inside
# the sandbox drops every packet between 198.18.0.2 and 198.18.0.1 (the
# "cable pull"). When does the program find out?
#
# The program is tests/e2e/fixtures/ka.c (built here); it prints the errno
# name and the time elapsed since a precisely defined moment (see ka.c):
#   keepalive cases      since its last recv() that returned data, i.e. the
#                        last segment it received (less one socketpair hop)
#   user-timeout case    since its first write after the cut, made when all
#                        earlier data was acked: the oldest unacked data
# Each test prints what it measured as a TAP comment (bats shows it).
#
# Bounds. Linux (tcp_keepalive_timer) sends the first probe keepidle after
# the last segment received, one every keepintvl after it, and aborts when
# the timer fires with keepcnt probes unanswered: exactly keepidle +
# keepcnt x keepintvl after the last segment (1 + 3 x 1 = 4 s here). The
# acceptance allows 0.5 s late; earlier than 100 ms before the exact time
# would mean a probe or the abort came too soon.

load helpers

setup_file() {
	command -v cc >/dev/null 2>&1 || return 0 # setup() skips or fails
	KA=$BATS_FILE_TMPDIR/ka
	cc -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE \
		-o "$KA" "$BATS_TEST_DIRNAME/fixtures/ka.c"
	export KA
}

setup() {
	need_sandbox
	need cc nft
	need_build
	[[ -x ${KA:-} ]] || fail "tests/e2e/fixtures/ka.c did not build"
}

teardown() {
	e2e_teardown
}

# measured TEXT: shown by bats as a TAP comment, pass or fail.
measured() {
	echo "# $BATS_TEST_DESCRIPTION: $*" >&3
}

@test "keepalive 1/1/3: a recv blocked on a vanished peer fails with ETIMEDOUT 4 s after the last segment received" {
	run -0 in_sandbox -t 60 <<'EOF'
source "$FIXTURES/keepalive.bash"
ka_bg server "$KA" --greet --then sink listen "$KERNEL" 0
wait_line server '^port='
ka_bg client utcp run -- "$KA" --keepalive 1,1,3 --expect-greet \
	connect "$KERNEL" "$(value server port)"
wait_line client '^ready'
cable_cut
echo "cut after the last segment received: $((CUT_AT - $(value client rx_at))) ms"
ka_wait client 15
cable_counters
echo "kernel's view: $(ss -Htan state established dst "$ENGINE" | wc -l) connection(s) still established"
EOF
	assert_line "client: options keepalive=1 idle=1 intvl=1 cnt=3 user_timeout=0"
	assert_line --regexp "^client: recv=-1 errno=ETIMEDOUT elapsed_ms=[0-9]+ since=last_rx$"
	ms=$(match "recv=-1 errno=ETIMEDOUT elapsed_ms=([0-9]+)")
	cut=$(match "cut after the last segment received: ([0-9]+) ms")
	measured "recv -> ETIMEDOUT after $ms ms (bound 4000 + 500)"
	# The cut must precede the first probe, or the kernel would answer it.
	((cut < 1000)) || fail "the cut came $cut ms after the last segment: too late"
	((ms >= 3900 && ms <= 4500)) || fail "ETIMEDOUT after $ms ms, want 4000 (-100, +500)"
	# 3 probes and the RST, all lost; the kernel never learns.
	pre=$(match "dropped engine->kernel ([0-9]+)")
	((pre >= 4)) || fail "only $pre packets from the engine were dropped"
	assert_output --regexp "kernel->engine [1-9]"
	assert_output --partial "kernel's view: 1 connection(s) still established"
}

@test "without keepalive a recv blocked on a vanished peer stays blocked (5 s checked)" {
	run -0 in_sandbox -t 60 <<'EOF'
source "$FIXTURES/keepalive.bash"
ka_bg server "$KA" --greet --then sink listen "$KERNEL" 0
wait_line server '^port='
ka_bg client utcp run -- "$KA" --expect-greet --for 5 \
	connect "$KERNEL" "$(value server port)"
wait_line client '^ready'
cable_cut
# Counted before the client gives up at 5 s and its exit sends a FIN.
sleep 4
cable_counters
ka_wait client 15
EOF
	assert_line "client: options keepalive=0 idle=7200 intvl=75 cnt=9 user_timeout=0"
	assert_line "client: recv still blocked after 5 s: ok, killed by --for"
	refute_output --partial "recv=-"
	# An idle connection without keepalive sends nothing at all.
	assert_output --partial "dropped engine->kernel 0 "
	measured "recv still blocked 5 s after the cut; the engine sent 0 packets"
}

@test "keepalive abort: poll wakes with POLLHUP and SO_ERROR reads ETIMEDOUT" {
	run -0 in_sandbox -t 60 <<'EOF'
source "$FIXTURES/keepalive.bash"
ka_bg server "$KA" --greet --then sink listen "$KERNEL" 0
wait_line server '^port='
ka_bg client utcp run -- "$KA" --keepalive 1,1,2 --expect-greet --then poll \
	connect "$KERNEL" "$(value server port)"
wait_line client '^ready'
cable_cut
ka_wait client 15
EOF
	# Linux would add POLLERR; a socketpair end cannot show it (README,
	# "Detecting a dead peer"). POLLIN|POLLHUP wakes every poll loop and
	# SO_ERROR names the error.
	assert_line --regexp "^client: poll=1 revents=IN,[A-Z,]*HUP elapsed_ms=[0-9]+ since=last_rx$"
	assert_line "client: so_error=ETIMEDOUT"
	ms=$(match "poll=1 revents=[A-Z,]* elapsed_ms=([0-9]+)")
	revents=$(match "poll=1 revents=([A-Z,]*) ")
	measured "poll -> $revents after $ms ms (idle 1 + 2 x 1 s), then SO_ERROR ETIMEDOUT"
	((ms >= 2900 && ms <= 3500)) || fail "poll woke after $ms ms, want 3000 (-100, +500)"
}

@test "TCP_USER_TIMEOUT=3000: a writer fails with ETIMEDOUT 3 to 4 s after its oldest unacked data" {
	run -0 in_sandbox -t 60 <<'EOF'
source "$FIXTURES/keepalive.bash"
ka_bg server "$KA" --then sink listen "$KERNEL" 0
wait_line server '^port='
ka_bg client utcp run -- "$KA" --user-timeout 3000 --then write --go "$WORK/go" \
	connect "$KERNEL" "$(value server port)"
wait_line client '^acked'
cable_cut
touch "$WORK/go"
ka_wait client 15
cable_counters
EOF
	assert_line "client: options keepalive=0 idle=7200 intvl=75 cnt=9 user_timeout=3000"
	assert_line --regexp "^client: write=-1 errno=ETIMEDOUT elapsed_ms=[0-9]+ since=oldest_unacked$"
	ms=$(match "write=-1 errno=ETIMEDOUT elapsed_ms=([0-9]+)")
	bytes=$(match "bytes_after_go=([0-9]+)")
	measured "write -> ETIMEDOUT after $ms ms; $bytes bytes written after the cut"
	((ms >= 2950 && ms <= 4000)) || fail "ETIMEDOUT after $ms ms, want 3000..4000"
	# The writes kept succeeding until the abort.
	((bytes >= 20000)) || fail "only $bytes bytes written after the cut"
	pre=$(match "dropped engine->kernel ([0-9]+)")
	((pre >= 3)) || fail "only $pre packets from the engine were dropped"
}

@test "without TCP_USER_TIMEOUT writes succeed until the buffers fill, then block (6 s checked)" {
	run -0 in_sandbox -t 60 <<'EOF'
source "$FIXTURES/keepalive.bash"
ka_bg server "$KA" --then sink listen "$KERNEL" 0
wait_line server '^port='
ka_bg client utcp run -- "$KA" --then fill --go "$WORK/go" --for 6 \
	connect "$KERNEL" "$(value server port)"
wait_line client '^options'
cable_cut
touch "$WORK/go"
ka_wait client 15
cable_counters
EOF
	assert_line --regexp "^client: fill bytes=[0-9]+ blocked_ms=[0-9]+ after_ms=[0-9]+: write still blocked$"
	bytes=$(match "fill bytes=([0-9]+)")
	blocked=$(match "blocked_ms=([0-9]+)")
	measured "$bytes bytes accepted, then write blocked for $blocked ms (no error)"
	((bytes >= 65536)) || fail "only $bytes bytes accepted before blocking"
	((blocked >= 4000)) || fail "the last write returned only $blocked ms before the end"
	refute_output --partial "errno="
}

@test "server side: an accepted socket inherits keepalive from its listener and detects a vanished client" {
	run -0 in_sandbox -t 60 <<'EOF'
source "$FIXTURES/keepalive.bash"
ka_bg server utcp run -- "$KA" --keepalive 1,1,3 --expect-greet listen "$ENGINE" 0
wait_line server '^port='
ka_bg client "$KA" --greet --then hold connect "$ENGINE" "$(value server port)"
wait_line server '^ready'
cable_cut
echo "cut after the last segment received: $((CUT_AT - $(value server rx_at))) ms"
ka_wait server 15
cable_counters
EOF
	# The listener had the options; the accepted socket shows them.
	assert_line "server: options keepalive=1 idle=1 intvl=1 cnt=3 user_timeout=0"
	assert_line --regexp "^server: recv=-1 errno=ETIMEDOUT elapsed_ms=[0-9]+ since=last_rx$"
	ms=$(match "recv=-1 errno=ETIMEDOUT elapsed_ms=([0-9]+)")
	cut=$(match "cut after the last segment received: ([0-9]+) ms")
	measured "accepted socket: recv -> ETIMEDOUT after $ms ms (bound 4000 + 500)"
	((cut < 1000)) || fail "the cut came $cut ms after the last segment: too late"
	((ms >= 3900 && ms <= 4500)) || fail "ETIMEDOUT after $ms ms, want 4000 (-100, +500)"
	pre=$(match "dropped engine->kernel ([0-9]+)")
	((pre >= 4)) || fail "only $pre packets from the engine were dropped"
}
