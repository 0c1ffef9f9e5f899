#!/usr/bin/env bats
# Issue 5, proof 1: the socket surface under utcp matches the kernel's
# (tests/diff: surface.c's transcript over a veth pair and under utcp run,
# compared line by line save tests/diff/allowlist), and libutcp.so's own
# behaviour checks (preload/tests) pass against the real daemon.

load helpers

setup() {
	need_sandbox
	need_build
	need ip nft cc
}

teardown() {
	e2e_teardown
}

@test "the socket surface matches the kernel's, line by line" {
	run -0 timeout -k 10 400 "$REPO/tests/diff/run" 3>&-
	assert_output --regexp "transcripts match: [0-9]+ lines, [0-9]+ allowlisted"
}

@test "every allowlisted difference of the surface test gives its reason" {
	run -0 grep -Ev '^(#|$)' "$REPO/tests/diff/allowlist"
	while IFS= read -r line; do
		[[ $line == *"  # "?* ]] || fail "no reason: $line"
	done <<<"$output"
}

@test "libutcp.so's behaviour checks all pass against the real daemon" {
	run -0 timeout -k 10 320 "$REPO/preload/tests/run" 3>&-
	assert_output --regexp "preload behaviour \(real\): [0-9]+ passed, 0 failed"
}

@test "libutcp.so's behaviour checks also pass with the round-trip protocol (a daemon without asynchronous operations)" {
	# utcpd --no-async: the preload's socket(), connect() and accept()
	# take their older paths (ipc.h), which the real daemon no longer
	# leads them to.
	UTCPD_ARGS=--no-async run -0 timeout -k 10 320 "$REPO/preload/tests/run" 3>&-
	assert_output --regexp "preload behaviour \(real\): [0-9]+ passed, 0 failed"
}

@test "libutcp.so's behaviour checks also pass when programs and the daemon busy-poll (UTCP_BUSY_POLL, utcpd --busy-poll)" {
	# Every blocking receive, connect and accept of the checks polls
	# first; non-blocking calls, timeouts and errors must not change.
	UTCP_BUSY_POLL=300 UTCPD_ARGS="--busy-poll 100" run -0 timeout -k 10 320 \
		"$REPO/preload/tests/run" 3>&-
	assert_output --regexp "preload behaviour \(real\): [0-9]+ passed, 0 failed"
}

@test "libutcp.so's behaviour checks hold on the kernel itself (the expectations are Linux's)" {
	run -0 timeout -k 10 320 "$REPO/preload/tests/run" --kernel 3>&-
	assert_output --regexp "preload behaviour \(kernel\): [0-9]+ passed, 0 failed"
}
