#!/usr/bin/env bats
# ICMP and ICMPv6 errors reach the engine's connections (engine/icmp.c):
# nftables on the kernel's side rejects connections with an ICMP error,
# and a program under utcp run must fail as the kernel's own client does,
# at once and with the same error.

load helpers

setup() {
	need_sandbox
	need_build
	need nft curl
}

teardown() {
	e2e_teardown
}

# reject_setup: the kernel's side answers port 9 with ICMP errors: host
# unreachable (v4), address unreachable (v6), and port 10 with port
# unreachable (v4).
REJECT='
KERNEL6=$UTCP_SANDBOX_PEER6
nft -f - <<-NFT
	table inet rej {
		chain in {
			type filter hook input priority 0;
			ip daddr $KERNEL tcp dport 9 reject with icmp type host-unreachable
			ip daddr $KERNEL tcp dport 10 reject with icmp type port-unreachable
			ip6 daddr $KERNEL6 tcp dport 9 reject with icmpv6 type addr-unreachable
		}
	}
NFT
# try WHO URL [CURL-ARGS]: curl (under utcp run when WHO is engine):
# its exit status, how long it took and the reason the connect failed
try() {
	local who=$1 url=$2 t0 rc=0 out
	shift 2
	t0=$(now_ms)
	if [[ $who == engine ]]; then
		out=$(utcp run -- curl -sS -v --max-time 20 "$@" "$url" 2>&1) || rc=$?
	else
		out=$(curl -sS -v --max-time 20 "$@" "$url" 2>&1) || rc=$?
	fi
	echo "$who: exit $rc after $(($(now_ms) - t0)) ms"
	echo "$who reason: $(grep -oE "connect to .* failed: .*" <<<"$out" | sed "s/.*failed: //" | head -n 1)"
}
'

@test "ICMP host unreachable during connect: the engine fails at once with EHOSTUNREACH, as the kernel" {
	run -0 in_sandbox <<EOF
$REJECT
try kernel "http://\$KERNEL:9/"
try engine "http://\$KERNEL:9/"
utcp stat icmp_conn_aborted
EOF
	assert_line "kernel reason: No route to host"
	assert_line --regexp "^engine: exit 7 after [0-9]+ ms"
	assert_line "engine reason: No route to host"
	ms=$(match "engine: exit 7 after ([0-9]+) ms")
	((ms < 1000)) || fail "took $ms ms: the ICMP error was not acted on"
	assert_line --regexp "^icmp_conn_aborted +1$"
}

@test "ICMP port unreachable during connect: ECONNREFUSED, as the kernel" {
	run -0 in_sandbox <<EOF
$REJECT
try kernel "http://\$KERNEL:10/"
try engine "http://\$KERNEL:10/"
EOF
	assert_line "kernel reason: Connection refused"
	assert_line "engine reason: Connection refused"
	ms=$(match "engine: exit 7 after ([0-9]+) ms")
	((ms < 1000)) || fail "took $ms ms"
}

@test "ICMPv6 address unreachable during connect: the engine fails at once, as the kernel" {
	run -0 in_sandbox <<EOF
$REJECT
try kernel "http://[\$KERNEL6]:9/" -6
try engine "http://[\$KERNEL6]:9/" -6
utcp stat icmp_in icmp_conn_aborted
EOF
	assert_line "kernel reason: No route to host"
	assert_line "engine reason: No route to host"
	ms=$(match "engine: exit 7 after ([0-9]+) ms")
	((ms < 1000)) || fail "took $ms ms"
	assert_line --regexp "^icmp_conn_aborted +1$"
}
