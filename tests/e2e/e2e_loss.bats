#!/usr/bin/env bats
# A lossy and a duplicating link between the engine and the kernel, made
# with nftables inside the sandbox: 16 MiB must still cross intact both
# ways, and the engine must show that it recovered (retransmissions, and
# duplicates dropped as old). The drops are deterministic (every Nth
# packet, numgen inc), so a failure reproduces.

load helpers

setup() {
	need_sandbox
	need_build
	need nft
}

teardown() {
	e2e_teardown
}

# The rules go first in prerouting (what the engine sends arrives through
# the TUN) and in output (what the kernel sends toward the engine).
LOSSY='
lossy() { # lossy N M: drop every Nth engine→kernel and Mth kernel→engine packet
	nft -f - <<-NFT
		table inet lossy {
			chain pre {
				type filter hook prerouting priority -300;
				ip saddr $ENGINE ip daddr $KERNEL numgen inc mod $1 == 0 counter drop
			}
			chain out {
				type filter hook output priority -300;
				ip saddr $KERNEL ip daddr $ENGINE numgen inc mod $2 == 0 counter drop
			}
		}
	NFT
}
dropped() { # packets the rules dropped, both directions
	nft list table inet lossy | grep -oE "counter packets [0-9]+" |
		awk "{ n += \$3 } END { print n + 0 }"
}
counter() { utcp stat -a "$1" | awk "{ print \$2 }"; }
'

# download N M [SANDBOX-ARGS]: 16 MiB from the kernel's server to curl
# under utcp run, every Nth/Mth packet dropped.
download() {
	run -0 in_sandbox "${@:3}" <<EOF
$LOSSY
random_file "\$WORK/blob" 16
start_httpd --bind "\$KERNEL" --file "\$WORK/blob"
lossy $1 $2
utcp run -- curl -sS --max-time 60 -o "\$WORK/got" "http://\$KERNEL:\$HTTPD_PORT/blob"
same_sha "\$WORK/blob" "\$WORK/got"
echo "dropped \$(dropped) packets"
echo "engine retransmitted \$(counter tcp_retransmit) segments"
EOF
	assert_output --partial "sha256 match"
	(($(match "dropped ([0-9]+) packets") > 0)) || fail "the link dropped nothing"
	# the engine's ACKs and the handshake are lost too: it must resend
	(($(match "retransmitted ([0-9]+) segments") > 0)) || fail "no retransmission"
}

# upload N M [SANDBOX-ARGS]: 16 MiB from curl under utcp run to the
# kernel's server, every Nth/Mth packet dropped.
upload() {
	run -0 in_sandbox "${@:3}" <<EOF
$LOSSY
random_file "\$WORK/up" 16
start_httpd --bind "\$KERNEL"
lossy $1 $2
t0=\$(now_ms)
reply=\$(utcp run -- curl -sS --max-time 60 -T "\$WORK/up" "http://\$KERNEL:\$HTTPD_PORT/upload")
echo "upload took \$((\$(now_ms) - t0)) ms"
echo "server received: \$reply"
[[ \$reply == "\$(sha "\$WORK/up") \$(stat -c %s "\$WORK/up")" ]] && echo "upload intact"
echo "dropped \$(dropped) packets"
echo "engine retransmitted \$(counter tcp_retransmit) segments, \$(counter tcp_fast_retransmit) fast retransmits, \$(counter tcp_loss_probe) loss probes, \$(counter tcp_rto_expired) timeouts"
EOF
	assert_output --partial "upload intact"
	(($(match "dropped ([0-9]+) packets") > 0)) || fail "the link dropped nothing"
	(($(match "retransmitted ([0-9]+) segments") > 0)) || fail "no retransmission"
	# losses in a long flight are repaired by duplicate ACKs and SACK,
	# not by waiting for the timer
	(($(match "([0-9]+) fast retransmits") > 0)) || fail "no fast retransmit"
	echo "# $(match "(upload took [0-9]+ ms)"): $(match "retransmitted ([0-9]+ segments, .*)")" >&3
}

@test "a download of 16 MiB crosses a link that drops every 37th and 41st packet, intact" {
	download 37 41
}

@test "an upload of 16 MiB crosses a link that drops every 29th and 31st packet, intact, with fast retransmits" {
	upload 29 31
}

@test "the same download at MTU 1500, one segment per packet" {
	download 37 41 --mtu 1500
}

@test "the same upload at MTU 1500: recovery by SACK, limited transmit and loss probes, not by timeouts" {
	upload 29 31 --mtu 1500
	# 3.4 % of 11,600 segments lost, some retransmissions too: the RTO
	# must stay the exception (231 timeouts and 52 s before limited
	# transmit, loss probes and cwnd growth of small windows; about 15)
	timeouts=$(match "([0-9]+) timeouts")
	((timeouts <= 40)) || fail "$timeouts retransmission timeouts"
}

@test "duplicated segments both ways: 16 MiB each way intact, the copies dropped as old" {
	run -0 in_sandbox <<EOF
$LOSSY
random_file "\$WORK/blob" 16
start_httpd --bind "\$KERNEL" --file "\$WORK/blob"
# every 5th packet toward the engine and every 7th toward the kernel twice
nft -f - <<-NFT
	table ip dupy {
		chain out {
			type filter hook output priority -300;
			ip saddr \$KERNEL ip daddr \$ENGINE numgen inc mod 5 == 0 counter dup to \$ENGINE device utcp0
		}
		chain pre {
			type filter hook prerouting priority -300;
			ip saddr \$ENGINE ip daddr \$KERNEL numgen inc mod 7 == 0 counter dup to \$KERNEL device lo
		}
	}
NFT
utcp run -- curl -sS --max-time 60 -o "\$WORK/got" "http://\$KERNEL:\$HTTPD_PORT/blob"
same_sha "\$WORK/blob" "\$WORK/got"
reply=\$(utcp run -- curl -sS --max-time 60 -T "\$WORK/blob" "http://\$KERNEL:\$HTTPD_PORT/upload")
[[ \$reply == "\$(sha "\$WORK/blob") \$(stat -c %s "\$WORK/blob")" ]] && echo "upload intact"
echo "duplicated \$(nft list table ip dupy | grep -oE 'counter packets [0-9]+' | awk '{ n += \$3 } END { print n + 0 }') packets"
echo "engine dropped \$(counter drop_out_of_window) old segments"
EOF
	assert_output --partial "sha256 match"
	assert_output --partial "upload intact"
	(($(match "duplicated ([0-9]+) packets") > 0)) || fail "nothing was duplicated"
	(($(match "engine dropped ([0-9]+) old segments") > 0)) || fail "no duplicate seen"
}
