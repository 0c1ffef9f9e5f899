#!/usr/bin/env bats
# The utcp tool itself: usage, exit statuses, and a sandbox that leaves
# nothing behind.

load helpers

setup() {
	[[ -x $UTCP_BUILD/utcp ]] || fail "$UTCP_BUILD/utcp was not built (make)"
}

teardown() {
	e2e_teardown
}

@test "utcp and each subcommand print their usage with --help and exit 2 on bad usage" {
	run -0 utcp --help
	assert_output --partial "Usage: utcp COMMAND"
	for cmd in sandbox run stat ss trace diagram; do
		run -0 utcp "$cmd" --help
		assert_output --partial "Usage: utcp $cmd"
		run -2 utcp "$cmd" --no-such-option
		assert_output --partial "utcp $cmd --help"
	done
	run -2 utcp no-such-command
	run -2 utcp
	run -2 utcp sandbox
	assert_output --partial "no command given"
	run -2 utcp run
	run -2 utcp sandbox --mtu 20 -- true
}

@test "utcp run, trace, ss and diagram reject bad arguments with exit 2" {
	run -2 utcp run --trace-format xml -- true
	assert_output --partial "text or json"
	run -2 utcp run --pcap-max 10k -- true
	assert_output --partial "needs --pcap"
	run -2 utcp run --pcap x.pcap --pcap-max lots -- true
	assert_output --partial "bad --pcap-max"
	run -2 utcp trace --pid nobody
	run -2 utcp ss state nowhere
	assert_output --partial "unknown state"
	run -2 utcp ss established
	run -2 utcp diagram -o states.jpg
	assert_output --partial ".dot, .svg or .png"
}

@test "utcp diagram draws the eleven RFC 9293 states without a trace" {
	run -0 utcp diagram
	for s in CLOSED LISTEN SYN-SENT SYN-RECEIVED ESTABLISHED FIN-WAIT-1 \
		FIN-WAIT-2 CLOSE-WAIT CLOSING LAST-ACK TIME-WAIT; do
		assert_output --partial "id=\"state_$s\""
	done
	refute_output --partial 'class="taken"'
}

@test "utcp diagram without graphviz writes the DOT next to the picture and says so" {
	mkdir "$BATS_TEST_TMPDIR/bin"
	run -1 env PATH="$BATS_TEST_TMPDIR/bin" "$UTCP_BUILD/utcp" diagram \
		-o "$BATS_TEST_TMPDIR/states.svg"
	assert_output --partial "graphviz's dot is not installed"
	[[ -s $BATS_TEST_TMPDIR/states.dot ]] || fail "no states.dot"
	[[ ! -e $BATS_TEST_TMPDIR/states.svg ]] || fail "states.svg exists"
}

@test "utcp run without a daemon fails at once with one line naming the socket" {
	[[ -e $UTCP_BUILD/libutcp.so ]] || fail "libutcp.so was not built (make)"
	sock=$BATS_TEST_TMPDIR/none.sock
	run -125 --separate-stderr env UTCP_SOCKET="$sock" utcp run -- true
	assert_equal "${#stderr_lines[@]}" 1
	[[ ${stderr_lines[0]} == *"$sock"* ]] || fail "does not name $sock: $stderr"
}

@test "utcp stat and utcp ss without a daemon say which socket they tried" {
	sock=$BATS_TEST_TMPDIR/none.sock
	run -1 env UTCP_SOCKET="$sock" utcp stat
	assert_output --partial "$sock"
	run -1 env UTCP_SOCKET="$sock" utcp ss
	assert_output --partial "$sock"
}

@test "utcp sandbox shows the daemon's stderr when it dies before it is ready" {
	need_sandbox
	printf '#!/bin/sh\necho "utcpd: cannot open /dev/net/tun: testing" >&2\nexit 3\n' \
		>"$BATS_TEST_TMPDIR/bad-utcpd"
	chmod +x "$BATS_TEST_TMPDIR/bad-utcpd"
	run -125 env UTCPD="$BATS_TEST_TMPDIR/bad-utcpd" utcp sandbox -- true 3>&-
	assert_output --partial "utcpd exited with status 3 before it was ready"
	assert_output --partial "cannot open /dev/net/tun: testing"
}

@test "utcp sandbox returns its command's status and leaves no process, namespace or file behind" {
	need_sandbox
	need_build
	run -42 timeout 60 utcp sandbox -- bash -c '
		sleep 300 &
		echo "sleeper $!"
		echo "netns $(stat -L -c %i /proc/self/ns/net)"
		echo "socket $UTCP_SOCKET"
		utcp stat -a >/dev/null && echo "daemon answers"
		exit 42' 3>&-
	assert_output --partial "daemon answers"
	sleeper=$(match "sleeper ([0-9]+)")
	netns=$(match "netns ([0-9]+)")
	sock=$(match "socket ([^ ]+)")
	run ! kill -0 "$sleeper"
	run ! test -e "$(dirname "$sock")"
	for ns in /proc/[0-9]*/ns/net; do
		if [[ $(stat -L -c %i "$ns" 2>/dev/null) == "$netns" ]]; then
			fail "$ns is still in the sandbox's namespace"
		fi
	done
}

@test "utcp sandbox reports death by signal as 128+N" {
	need_sandbox
	need_build
	run -137 timeout 60 utcp sandbox -- sh -c 'kill -KILL $$' 3>&-
}
