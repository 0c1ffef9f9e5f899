# helpers.bash — shared by tests/e2e/*.bats (load it with `load helpers`).
#
# Every test makes its own network namespace through `utcp sandbox` and runs
# a bash script inside it (in_sandbox); fixtures/lib.bash gives those
# scripts their helpers. Nothing leaves the namespace; nothing outlives it.
#
# Environment:
#   UTCP_BUILD    where utcp, utcpd and libutcp.so are (default: build/)
#   UTCPD         the daemon `utcp sandbox` starts (e.g. build-san/utcpd)
#   UTCP_PRELOAD  the preload `utcp run` uses
#   CI=true       a missing prerequisite fails a test instead of skipping it

bats_require_minimum_version 1.5.0

for _lib in bats-support bats-assert; do
	if [[ ! -f /usr/lib/bats/$_lib/load.bash ]]; then
		echo "missing /usr/lib/bats/$_lib: run tools/deps" >&2
		exit 1
	fi
	load "/usr/lib/bats/$_lib/load.bash"
done
unset _lib

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
UTCP_BUILD=${UTCP_BUILD:-$REPO/build}
FIXTURES=$BATS_TEST_DIRNAME/fixtures
PY=/usr/bin/python3 # Debian's, with nothing of a user's site packages
export REPO UTCP_BUILD FIXTURES PY
export PATH="$UTCP_BUILD:$PATH"

# A missing tool or permission: skip, except under CI where it must fail.
prereq_missing() {
	if [[ ${CI:-} == true ]]; then
		fail "missing prerequisite: $1"
	fi
	skip "missing prerequisite: $1"
}

need() {
	local c
	for c; do
		command -v "$c" >/dev/null 2>&1 || prereq_missing "$c"
	done
}

# What every sandboxed test needs from the machine.
need_sandbox() {
	need timeout curl ss sha256sum "$PY"
	[[ -c /dev/net/tun ]] || prereq_missing "/dev/net/tun"
	if ((EUID != 0)) && ! [[ -r /dev/net/tun && -w /dev/net/tun ]]; then
		prereq_missing "root, or a /dev/net/tun this user may open"
	fi
}

# The build products are not prerequisites: if make did not produce them,
# the test fails.
need_build() {
	local f
	for f in utcp utcpd libutcp.so; do
		[[ -e $UTCP_BUILD/$f ]] || fail "$UTCP_BUILD/$f was not built (make)"
	done
}

# in_sandbox [-t SECONDS] [--mtu MTU] [--fault SPEC] [--busy-poll USEC]
#            < SCRIPT
# Runs SCRIPT (bash, set -euo pipefail, fixtures/lib.bash loaded) inside a
# fresh `utcp sandbox`. Use it under `run`: run -0 in_sandbox <<'EOF' … EOF.
# fd 3 (bats' own) is closed, or a process holding it would hang bats.
in_sandbox() {
	local t=120 sargs=()
	while (($# > 0)); do
		case $1 in
		-t) t=$2 ;;
		--mtu) sargs+=(--mtu "$2") ;; # the TUN's MTU (default: utcp's)
		--fault) sargs+=(--fault "$2") ;; # utcpd --fault SPEC (e2e_faults)
		--busy-poll) sargs+=(--busy-poll "$2") ;;
		*) break ;;
		esac
		shift 2
	done
	local script
	script=$(cat)
	# shellcheck disable=SC2016 # $FIXTURES expands inside the sandbox
	E2E_WORK=$BATS_TEST_TMPDIR timeout -k 10 "$t" \
		utcp sandbox "${sargs[@]}" --daemon-log "$BATS_TEST_TMPDIR/utcpd.log" -- \
		bash -c 'set -euo pipefail; source "$FIXTURES/lib.bash"; '"$script" 3>&-
}

# match REGEX: the first parenthesised group of REGEX in $output (fails
# the test when REGEX does not match), for assertions on numbers.
match() {
	[[ $output =~ $1 ]] || fail "no match for '$1' in the output"
	echo "${BASH_REMATCH[1]}"
}

# On failure, show what the last `run` printed when it failed (run -0
# does not) and what the daemon said.
e2e_teardown() {
	[[ -z ${BATS_TEST_COMPLETED:-} ]] || return 0
	if [[ ${status:-0} != 0 && -n ${output:-} ]]; then
		echo "--- output of the failed command (status $status) ---"
		printf '%s\n' "$output"
	fi
	if [[ -s $BATS_TEST_TMPDIR/utcpd.log ]]; then
		echo "--- utcpd's log (last 40 lines) ---"
		tail -n 40 "$BATS_TEST_TMPDIR/utcpd.log"
	fi
}
