#!/bin/sh
# Each selftest script must FAIL with the message in its "// expect:" line.
runner=$1; shift
pass=0; fail=0
for f in "$@"; do
	want=$(sed -n '1s|^// expect: ||p' "$f")
	out=$("$runner" "$f" 2>/dev/null)
	if printf '%s\n' "$out" | grep -q '^FAIL' && printf '%s\n' "$out" | grep -qF -- "$want"; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1)); echo "selftest $f: wanted a failure with '$want', got:"; printf '%s\n' "$out"
	fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
