#!/usr/bin/env bats
# A smoke run of the benchmark (bench/run --smoke): every set-up and
# workload once, for about a second. Benchmarks are not tests: this checks
# that the table, the Markdown and the chart come out with figures in them,
# never how fast anything is.

load helpers

setup() {
	need_sandbox
	need_build
	need iperf3 sockperf slirp4netns pasta gnuplot socat nsenter cc
}

teardown() {
	e2e_teardown
}

# A figure in the table: a median, then its spread.
NUM='[0-9][0-9,]*(\.[0-9]+)? +[0-9][0-9,.]*–[0-9]'

@test "bench/run --smoke prints one table with figures for every set-up and writes the Markdown, the chart and the raw runs" {
	local out=$BATS_TEST_TMPDIR/results
	run -0 timeout -k 5 150 "$REPO/bench/run" --smoke --out "$out" 3>&-

	# Each workload's heading, and kernel TCP and utcp with a figure in
	# every workload they run in.
	local w
	for w in "iperf3, 1 stream, app sends" "iperf3, 1 stream, app receives" \
		"iperf3, 4 streams, app sends" "ping-pong 64 B, p50" \
		"connect + 64 B request/answer + close" \
		"RSS per idle established connection" \
		"AF_UNIX socketpair ping-pong" "file read()"; do
		assert_line --partial "$w"
	done
	refute_line --regexp '^  (kernel veth|utcp, app = (client|server)|without preload|with libutcp\.so) +n/a'
	assert_line --regexp "^  kernel veth +$NUM"
	assert_line --regexp "^  utcp, app = client +$NUM"
	assert_line --regexp "^  utcp, app = server +$NUM"
	# and the daemon that polls (utcpd --busy-poll), in ping-pong and crr
	assert_line --regexp "^  utcp --busy-poll, client +$NUM"
	assert_line --regexp "^  utcp --busy-poll, server +$NUM"
	assert_line --regexp "^  with libutcp\.so +$NUM"
	# The peers ran too (a hiccup of theirs is theirs: one figure each).
	assert_line --regexp "^  slirp4netns, [a-z> -]+ +$NUM"
	assert_line --regexp "^  pasta, [a-z> -]+ +$NUM"
	# Ratios to kernel TCP: utcp's throughput row has one.
	assert_line --regexp "^  utcp, app = client +$NUM[^ ]* +[0-9]+\.[0-9]{2}"

	local md
	md=$(find "$out" -name '*.md')
	[[ -n $md ]] || fail "no Markdown in $out"
	run -0 cat "$md"
	assert_line --regexp '^- cpu: .+'
	assert_line --regexp '^- kernel: Linux '
	assert_line --regexp '^\| iperf3, 1 stream, app sends \(Gbit/s ↑\) \| kernel veth \| [0-9]'
	assert_line --regexp '^\| +\| utcp, app = client \| [0-9]'
	assert_output --partial "![chart]("
	[[ $(head -c 4 "${md%.md}.png" | od -An -c | tr -d ' ') == *PNG* ]] ||
		fail "no PNG next to $md"
	[[ -s ${md%.md}.tsv ]] || fail "no raw figures next to $md"

	# Nothing of the run is left: no namespace of ours.
	run -0 ip netns list
	refute_output --partial utcp-bench-
}
