#!/usr/bin/env bats
# Issue 5, proofs 2 and 3: unmodified programs under `utcp run`, each
# against a kernel-side peer across the TUN (or the reverse), with the data
# checked end to end (sha256), exit statuses and error counts. Then fork
# and exec: a forking server, and a shell that execs a program with the
# /dev/tcp fd it opened. Each test runs in its own `utcp sandbox`.

load helpers

setup() {
	need_sandbox
	need_build
}

teardown() {
	e2e_teardown
}

# in_programs [-t S] < SCRIPT: in_sandbox with fixtures/programs.bash.
in_programs() {
	local t=(-t 60)
	if [[ ${1:-} == -t ]]; then
		t=(-t "$2")
		shift 2
	fi
	in_sandbox "${t[@]}" < <(
		# shellcheck disable=SC2016 # expands inside the sandbox
		echo 'source "$FIXTURES/programs.bash"'
		cat
	)
}

@test "curl: GET and PUT intact through the engine" {
	run -0 in_programs <<'EOF'
start_httpd --bind "$KERNEL"
url=http://$KERNEL:$HTTPD_PORT
utcp run -- curl -sS --max-time 20 -o "$WORK/got" "$url/blob?size=4194304&seed=1"
[[ $(sha "$WORK/got") == "$(curl -sS "$url/sha?size=4194304&seed=1")" ]]
echo "GET intact"
random_file "$WORK/up" 4
reply=$(utcp run -- curl -sS --max-time 20 -T "$WORK/up" "$url/up")
[[ $reply == "$(sha "$WORK/up") $((4 << 20))" ]]
echo "PUT intact"
echo "engine opens: $(engine_opens)"
EOF
	assert_line "GET intact"
	assert_line "PUT intact"
	assert_line "engine opens: active 2 passive 0"
}

@test "curl: two URLs on one keep-alive connection" {
	run -0 in_programs <<'EOF'
start_httpd --bind "$KERNEL"
url=http://$KERNEL:$HTTPD_PORT
utcp run -- curl -sS -v --max-time 20 \
	-o "$WORK/a" "$url/blob?size=1000000&seed=1" \
	-o "$WORK/b" "$url/blob?size=2000000&seed=2" 2>"$WORK/err"
[[ $(sha "$WORK/a") == "$(curl -sS "$url/sha?size=1000000&seed=1")" ]]
[[ $(sha "$WORK/b") == "$(curl -sS "$url/sha?size=2000000&seed=2")" ]]
echo "both intact"
grep -m 1 "Re-using existing connection" "$WORK/err"
echo "connections the engine made: $(grep -c "^conn $ENGINE:" "$HTTPD_LOG")"
echo "engine opens: $(engine_opens)"
EOF
	assert_line "both intact"
	assert_output --partial "Re-using existing connection"
	assert_line "connections the engine made: 1"
	assert_line "engine opens: active 1 passive 0"
}

@test "curl -6: IPv6 through the engine, to a kernel server and from the kernel to a server under the preload" {
	run -0 in_programs <<'EOF'
start_httpd --bind "$KERNEL6"
url="http://[$KERNEL6]:$HTTPD_PORT"
utcp run -- curl -6 -sS --max-time 20 -o "$WORK/got" "$url/blob?size=3000000&seed=3"
[[ $(sha "$WORK/got") == "$(curl -6 -sS "$url/sha?size=3000000&seed=3")" ]]
echo "GET over IPv6 intact"
random_file "$WORK/up" 2
reply=$(utcp run -- curl -6 -sS --max-time 20 -T "$WORK/up" "$url/up")
[[ $reply == "$(sha "$WORK/up") $((2 << 20))" ]]
echo "PUT over IPv6 intact"
echo "the kernel's server was reached from $(grep -m 1 '^conn ' "$HTTPD_LOG")"
# and a server under the preload on the engine's IPv6 address
mkdir "$WORK/www"
random_file "$WORK/www/blob" 2
utcp run -- "$PY" -m http.server --bind "$ENGINE6" --directory "$WORK/www" 8080 \
	>"$WORK/server.log" 2>&1 &
wait_listen 8080 15
curl -6 -sS --max-time 20 -o "$WORK/got6" "http://[$ENGINE6]:8080/blob"
echo "IPv6 server under the preload: $(same_sha "$WORK/www/blob" "$WORK/got6")"
echo "engine opens: $(engine_opens)"
EOF
	assert_line "GET over IPv6 intact"
	assert_line "PUT over IPv6 intact"
	assert_output --regexp "reached from conn fd75:7463:7000::2:[0-9]+"
	assert_line --regexp "^IPv6 server under the preload: sha256 match"
	assert_line "engine opens: active 2 passive 1"
}

@test "wget fetches intact through the engine" {
	need wget
	run -0 in_programs <<'EOF'
start_httpd --bind "$KERNEL"
url=http://$KERNEL:$HTTPD_PORT
utcp run -- wget -q -T 20 -t 1 -O "$WORK/got" "$url/blob?size=4194304&seed=5"
[[ $(sha "$WORK/got") == "$(curl -sS "$url/sha?size=4194304&seed=5")" ]]
echo "wget intact"
echo "engine opens: $(engine_opens)"
EOF
	assert_line "wget intact"
	assert_line "engine opens: active 1 passive 0"
}

@test "python3: urllib GET and POST through the engine" {
	run -0 in_programs <<'EOF'
start_httpd --bind "$KERNEL"
url=http://$KERNEL:$HTTPD_PORT
utcp run -- "$PY" - "$url" <<'PY'
import hashlib, os, sys, urllib.request
url = sys.argv[1]
got = urllib.request.urlopen(url + "/blob?size=3000000&seed=7", timeout=20).read()
want = urllib.request.urlopen(url + "/sha?size=3000000&seed=7", timeout=20).read().decode().strip()
assert hashlib.sha256(got).hexdigest() == want, "GET corrupted"
print("urllib GET intact")
body = os.urandom(2 << 20)
req = urllib.request.Request(url + "/post", data=body, method="POST")
reply = urllib.request.urlopen(req, timeout=20).read().decode().split()
assert reply == [hashlib.sha256(body).hexdigest(), str(len(body))], reply
print("urllib POST intact")
PY
echo "engine opens: $(engine_opens)"
EOF
	assert_line "urllib GET intact"
	assert_line "urllib POST intact"
	assert_line "engine opens: active 3 passive 0"
}

@test "python3: http.server under the preload serves the kernel's curl" {
	run -0 in_programs <<'EOF'
mkdir "$WORK/www"
random_file "$WORK/www/blob" 4
utcp run -- "$PY" -m http.server --bind "$ENGINE" --directory "$WORK/www" 8080 \
	>"$WORK/server.log" 2>&1 &
wait_listen 8080 15
for i in 1 2 3; do
	curl -sS --max-time 20 -o "$WORK/got$i" "http://$ENGINE:8080/blob"
	same_sha "$WORK/www/blob" "$WORK/got$i"
done
echo "engine opens: $(engine_opens)"
EOF
	assert_equal "$(grep -c "sha256 match" <<<"$output")" 3
	assert_line "engine opens: active 0 passive 3"
}

@test "python3: asyncio client and asyncio server, each under the preload" {
	run -0 in_programs <<'EOF'
# asyncio server under the preload, the kernel's asyncio clients
utcp run -- "$PY" "$FIXTURES/aio_echo.py" server "$ENGINE" 7100 >"$WORK/s1.log" 2>&1 &
wait_listen 7100
echo "server under the preload: $(timeout 60 "$PY" "$FIXTURES/aio_echo.py" client "$ENGINE" 7100 8)"
# the kernel's asyncio server, asyncio clients under the preload
"$PY" "$FIXTURES/aio_echo.py" server "$KERNEL" 7101 >"$WORK/s2.log" 2>&1 &
wait_kernel_listen "$KERNEL" 7101
echo "client under the preload: $(timeout 60 utcp run -- "$PY" "$FIXTURES/aio_echo.py" client "$KERNEL" 7101 8)"
echo "engine opens: $(engine_opens)"
EOF
	assert_line "server under the preload: echo ok 8 conns 8388608 bytes"
	assert_line "client under the preload: echo ok 8 conns 8388608 bytes"
	assert_line "engine opens: active 8 passive 8"
}

@test "nginx (master + 2 workers as nobody, sendfile) under the preload serves wrk -c 50 without errors, and reloads while serving" {
	need nginx wrk
	run -0 in_programs -t 90 <<'EOF'
# The site where nginx's workers (user nobody) can read it; pid and logs
# in the test's directory.
ng=$(mktemp -d /tmp/utcp-e2e-nginx.XXXXXX)
trap 'rm -rf "$ng"' EXIT
chmod 755 "$ng"
mkdir -p "$ng/www" "$ng/tmp"
random_file "$ng/www/f" 1
chmod -R a+rX "$ng/www"
write_nginx_conf "$ng" "$WORK" "$ENGINE" 1
nginx=(nginx -p "$ng" -e "$WORK/error.log" -c "$ng/nginx.conf")
utcp run -- "${nginx[@]}"
wait_for 10 test -s "$WORK/nginx.pid"
wait_listen 8080
master=$(cat "$WORK/nginx.pid")
echo "workers: $(pgrep -c -P "$master") as $(ps -o user= --ppid "$master" | sort -u)"
curl -sS --max-time 10 -o "$WORK/got" "http://$ENGINE:8080/f"
same_sha "$ng/www/f" "$WORK/got"

timeout 30 wrk -t 2 -c 50 -d 2s "http://$ENGINE:8080/f" >"$WORK/wrk1"
sed 's/^/wrk: /' "$WORK/wrk1"

# Reload with a new config while wrk runs. Connection: close, because on
# a reload the old workers close idle keep-alive connections, which wrk
# counts as read errors against the kernel's nginx too.
write_nginx_conf "$ng" "$WORK" "$ENGINE" 2
timeout 30 wrk -t 2 -c 50 -d 3s -H "Connection: close" "http://$ENGINE:8080/f" >"$WORK/wrk2" &
wrk=$!
sleep 1
"${nginx[@]}" -s reload
wait "$wrk"
sed 's/^/wrk reload: /' "$WORK/wrk2"
gen=$(curl -sS --max-time 10 -D - -o "$WORK/got2" "http://$ENGINE:8080/f" | tr -d '\r' | sed -n 's/^X-Generation: //p')
same_sha "$ng/www/f" "$WORK/got2"
echo "generation after reload: $gen"
echo "workers started: $(grep -cE 'start worker process [0-9]+' "$WORK/error.log")"
echo "same master: $([[ $(cat "$WORK/nginx.pid") == "$master" ]] && echo yes)"
grep -E '\[(alert|crit|emerg|error)\]' "$WORK/error.log" | sed 's/^/nginx: /' || true
"${nginx[@]}" -s quit
EOF
	assert_line "workers: 2 as nobody"
	assert_equal "$(grep -c "sha256 match" <<<"$output")" 2
	# wrk prints these lines only when some requests failed
	refute_output --partial "Socket errors"
	refute_output --partial "Non-2xx"
	refute_output --regexp "nginx: .*\[(alert|crit|emerg|error)\]"
	reqs=$(match "wrk: +([0-9]+) requests in")
	((reqs > 100)) || fail "only $reqs requests"
	reqs=$(match "wrk reload: +([0-9]+) requests in")
	((reqs > 100)) || fail "only $reqs requests across the reload"
	assert_line "generation after reload: 2"
	assert_line "workers started: 4"
	assert_line "same master: yes"
}

@test "socat both ways: a client and a server under the preload" {
	need socat
	run -0 in_programs <<'EOF'
random_file "$WORK/up" 4
random_file "$WORK/down" 4
# socat listening on the engine, the kernel's socat sends
utcp run -- socat -u TCP-LISTEN:7200,bind="$ENGINE" CREATE:"$WORK/got1" &
srv=$!
wait_listen 7200
timeout 30 socat -u FILE:"$WORK/up" TCP:"$ENGINE":7200
wait "$srv"
echo "to the server under the preload: $(same_sha "$WORK/up" "$WORK/got1")"
# the kernel's socat listens, socat under the preload sends
socat -u TCP-LISTEN:7201,bind="$KERNEL",reuseaddr CREATE:"$WORK/got2" &
srv=$!
wait_kernel_listen "$KERNEL" 7201
timeout 30 utcp run -- socat -u FILE:"$WORK/down" TCP:"$KERNEL":7201
wait "$srv"
echo "from the client under the preload: $(same_sha "$WORK/down" "$WORK/got2")"
# and both directions on one connection: the client under the preload
# sends a file to a kernel-side echo and keeps what comes back
socat TCP-LISTEN:7202,bind="$KERNEL",reuseaddr EXEC:cat &
srv=$!
wait_kernel_listen "$KERNEL" 7202
timeout 30 utcp run -- socat -t 10 FILE:"$WORK/up"'!!'CREATE:"$WORK/got3" TCP:"$KERNEL":7202
wait "$srv"
echo "echoed through the preload: $(same_sha "$WORK/up" "$WORK/got3")"
echo "engine opens: $(engine_opens)"
EOF
	assert_line --regexp "^to the server under the preload: sha256 match"
	assert_line --regexp "^from the client under the preload: sha256 match"
	assert_line --regexp "^echoed through the preload: sha256 match"
	assert_line "engine opens: active 2 passive 1"
}

@test "bash's /dev/tcp through the engine" {
	run -0 in_programs <<'EOF'
start_httpd --bind "$KERNEL"
url=http://$KERNEL:$HTTPD_PORT
utcp run -- bash -c '
	exec 3<>"/dev/tcp/$1/$2"
	printf "GET /blob?size=2000000&seed=9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" >&3
	cat <&3 >"$3"
' bash "$KERNEL" "$HTTPD_PORT" "$WORK/resp"
http_body "$WORK/resp" >"$WORK/got"
[[ $(sha "$WORK/got") == "$(curl -sS "$url/sha?size=2000000&seed=9")" ]]
echo "/dev/tcp intact: $(stat -c %s "$WORK/got") bytes"
echo "engine opens: $(engine_opens)"
EOF
	assert_line "/dev/tcp intact: 2000000 bytes"
	assert_line "engine opens: active 1 passive 0"
}

@test "iperf3 -P 4, both directions, as client and as server under the preload" {
	need iperf3
	run -0 in_programs -t 90 <<'EOF'
# client under the preload, the kernel's server; then -R
for dir in "" -R; do
	iperf3 -s -B "$KERNEL" -p 5201 -1 >/dev/null 2>&1 &
	srv=$!
	wait_kernel_listen "$KERNEL" 5201
	rc=0
	timeout 30 utcp run -- iperf3 -c "$KERNEL" -p 5201 -t 2 -P 4 $dir -J >"$WORK/c$dir.json" || rc=$?
	echo "client$dir: exit $rc $(iperf_summary "$WORK/c$dir.json")"
	wait "$srv"
done
# server under the preload, the kernel's client; then -R
for dir in "" -R; do
	utcp run -- iperf3 -s -B "$ENGINE" -p 5202 -1 >/dev/null 2>&1 &
	srv=$!
	wait_listen 5202
	rc=0
	timeout 30 iperf3 -c "$ENGINE" -p 5202 -t 2 -P 4 $dir -J >"$WORK/s$dir.json" || rc=$?
	echo "server$dir: exit $rc $(iperf_summary "$WORK/s$dir.json")"
	rc=0
	wait "$srv" || rc=$?
	echo "server$dir under the preload exited $rc"
done
echo "engine opens: $(engine_opens)"
EOF
	# (iperf3's sent and received counts are taken at different moments:
	# they differ by what was in flight, so they are not compared)
	for who in client client-R server server-R; do
		assert_line --regexp "^$who: exit 0 streams 4 sent [1-9][0-9]* received [1-9][0-9]* [0-9]+ Mbit/s"
	done
	assert_line "server under the preload exited 0"
	assert_line "server-R under the preload exited 0"
	assert_line "engine opens: active 10 passive 10"
}

@test "sockperf ping-pong: the client under the preload, the kernel's server" {
	need sockperf
	run -0 in_programs <<'EOF'
sockperf server --tcp -i "$KERNEL" -p 7300 >"$WORK/srv.log" 2>&1 &
wait_kernel_listen "$KERNEL" 7300
timeout 30 utcp run -- sockperf ping-pong --tcp -i "$KERNEL" -p 7300 -t 2 -m 64 >"$WORK/pp.log" 2>&1
grep -E "Valid Duration|Summary: Latency|dropped messages|percentile 50.000" "$WORK/pp.log"
echo "engine opens: $(engine_opens)"
EOF
	assert_output --regexp "Summary: Latency is [0-9.]+ usec"
	assert_output --regexp "# dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0"
	n=$(match "Valid Duration.*SentMessages=([0-9]+)")
	((n > 100)) || fail "only $n messages"
	assert_output --partial "SentMessages=$n; ReceivedMessages=$n"
	assert_line "engine opens: active 1 passive 0"
}

@test "openssl s_server and s_client: TLS through the engine, both roles" {
	need openssl
	run -0 in_programs <<'EOF'
cd "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout key.pem -out cert.pem -days 1 -subj /CN=utcp-test 2>/dev/null
head -c 1500000 /dev/urandom | base64 >up.txt
# s_server under the preload; the kernel's s_client sends up.txt
sleep 30 | utcp run -- openssl s_server -accept "$ENGINE:7400" -cert cert.pem \
	-key key.pem -naccept 1 -quiet >got1.txt 2>s1.log &
srv=$!
wait_listen 7400
timeout 30 openssl s_client -connect "$ENGINE:7400" -quiet -no_ign_eof \
	-nocommands <up.txt >/dev/null 2>c1.log
for _ in $(seq 100); do
	[[ $(stat -c %s got1.txt) -ge $(stat -c %s up.txt) ]] && break
	sleep 0.1
done
echo "to s_server under the preload: $(same_sha up.txt got1.txt)"
kill "$srv" 2>/dev/null || true
# the kernel's s_server -WWW; s_client under the preload fetches a file
head -c 2000000 /dev/urandom >down.bin
sleep 30 | openssl s_server -accept "$KERNEL:7401" -cert cert.pem -key key.pem \
	-WWW -naccept 1 >/dev/null 2>s2.log &
wait_kernel_listen "$KERNEL" 7401
printf 'GET /down.bin HTTP/1.0\r\n\r\n' |
	timeout 30 utcp run -- openssl s_client -connect "$KERNEL:7401" -quiet \
		-ign_eof >resp 2>c2.log
grep -a -m 1 "^HTTP/1.0 200" resp
http_body resp >got2.bin
echo "from s_client under the preload: $(same_sha down.bin got2.bin)"
grep -m 1 -oE "TLSv1\.[23]|CN ?= ?utcp-test" c2.log || true
echo "engine opens: $(engine_opens)"
EOF
	assert_line --regexp "^to s_server under the preload: sha256 match"
	assert_line --regexp "^from s_client under the preload: sha256 match"
	assert_line "engine opens: active 1 passive 1"
}

@test "fork: a forking server's children serve the connections it accepted" {
	run -0 in_programs <<'EOF'
utcp run -- "$PY" "$FIXTURES/forking_echo.py" "$ENGINE" 7500 >"$WORK/srv.log" 2>&1 &
wait_listen 7500
parent=$(awk '/^listening/ { print $2 }' "$WORK/srv.log")
# four clients at once, each 1 MiB echoed by its own child
"$PY" - "$ENGINE" 7500 "$parent" <<'PY'
import hashlib, os, socket, sys, threading
host, port, parent = sys.argv[1], int(sys.argv[2]), sys.argv[3]
res = {}
def client(i):
    data = os.urandom(1 << 20)
    s = socket.create_connection((host, port), timeout=30)
    f = s.makefile("rb")
    pid = f.readline().split()[1].decode()
    def send():
        s.sendall(data); s.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=send); t.start()
    got = f.read()
    t.join(); s.close()
    res[i] = (pid, hashlib.sha256(got).digest() == hashlib.sha256(data).digest())
ts = [threading.Thread(target=client, args=(i,)) for i in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
pids = {p for p, _ in res.values()}
print("intact echoes:", sum(ok for _, ok in res.values()))
print("distinct children:", len(pids), "parent among them:", parent in pids)
PY
echo "engine opens: $(engine_opens)"
EOF
	assert_line "intact echoes: 4"
	assert_line "distinct children: 4 parent among them: False"
	assert_line "engine opens: active 0 passive 4"
}

@test "exec: a shell opens /dev/tcp, then execs a program that uses the inherited fd" {
	need cc
	run -0 in_programs <<'EOF'
cc -O2 -Wall -Werror -o "$WORK/inherit" "$FIXTURES/inherit.c"
start_httpd --bind "$KERNEL"
url=http://$KERNEL:$HTTPD_PORT
utcp run -- bash -c '
	exec 3<>"/dev/tcp/$1/$2"
	printf "GET /blob?size=3000000&seed=11 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" >&3
	exec "$3" 3
' bash "$KERNEL" "$HTTPD_PORT" "$WORK/inherit" >"$WORK/resp" 2>"$WORK/err"
cat "$WORK/err"
http_body "$WORK/resp" >"$WORK/got"
[[ $(sha "$WORK/got") == "$(curl -sS "$url/sha?size=3000000&seed=11")" ]]
echo "the exec'd program read the response intact"
echo "engine opens: $(engine_opens)"
EOF
	assert_line --regexp "^peer 198\.18\.0\.1:[0-9]+$"
	assert_line --regexp "^local 198\.18\.0\.2:[0-9]+$"
	assert_line "SO_TYPE SOCK_STREAM SO_DOMAIN AF_INET"
	assert_line "TCP_INFO state ESTABLISHED"
	assert_line "the exec'd program read the response intact"
	# TCP_INFO is the engine's: it counted the bytes of the whole response
	n=$(match "TCP_INFO bytes_received ([0-9]+)")
	((n > 3000000)) || fail "tcpi_bytes_received $n"
	assert_line "engine opens: active 1 passive 0"
}

@test "utcp run says when a program is static and cannot be intercepted" {
	need cc
	[[ -e /usr/lib/x86_64-linux-gnu/libc.a || -e /usr/lib/libc.a ]] ||
		prereq_missing "a static libc (libc6-dev)"
	run -0 in_programs <<'EOF'
printf 'int main(void) { return 0; }\n' >"$WORK/s.c"
cc -static -o "$WORK/static" "$WORK/s.c"
cc -o "$WORK/dynamic" "$WORK/s.c"
utcp run -- "$WORK/static" 2>&1 | sed 's/^/static: /'
utcp run -- "$WORK/dynamic" 2>&1 | sed 's/^/dynamic: /'
echo done
echo "engine opens: $(engine_opens)"
EOF
	assert_line --regexp "^static: utcp run: warning: .*/static is statically linked"
	refute_output --partial "dynamic: "
	assert_line "engine opens: active 0 passive 0"
}

@test "dual stack: an AF_INET6 socket under the preload talks IPv4 through v4-mapped addresses" {
	run -0 in_programs <<'EOF'
start_httpd --bind "$KERNEL"
# under the preload: an AF_INET6 client to ::ffff:198.18.0.1, then an
# AF_INET6 listener on [::] (IPV6_V6ONLY off) that an IPv4 client reaches
utcp run -- "$PY" - "$KERNEL" "$HTTPD_PORT" >"$WORK/py.log" 2>&1 <<'PY' &
import hashlib, socket, sys, urllib.request
kernel, port = sys.argv[1], int(sys.argv[2])
c = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
c.connect(("::ffff:" + kernel, port))
print("client peer", c.getpeername()[0], "local", c.getsockname()[0])
c.sendall(b"GET /blob?size=100000&seed=3 HTTP/1.0\r\n\r\n")
resp = b""
while (d := c.recv(65536)):
    resp += d
body = resp.split(b"\r\n\r\n", 1)[1]
want = urllib.request.urlopen("http://%s:%d/sha?size=100000&seed=3" % (kernel, port)).read().decode().strip()
print("v4-mapped client fetch", "intact" if hashlib.sha256(body).hexdigest() == want else "CORRUPT")
l = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
l.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
l.bind(("::", 7600))
l.listen(1)
print("listening", flush=True)
s, peer = l.accept()
print("accepted from", peer[0], "on", s.getsockname()[0])
s.sendall(s.recv(100).upper())
s.close()
PY
py=$!
wait_listen 7600
echo "the kernel's IPv4 client got: $(echo hello | timeout 10 socat - TCP4:"$ENGINE":7600)"
wait "$py"
cat "$WORK/py.log"
echo "engine opens: $(engine_opens)"
EOF
	assert_line "client peer ::ffff:198.18.0.1 local ::ffff:198.18.0.2"
	assert_line "v4-mapped client fetch intact"
	assert_line "the kernel's IPv4 client got: HELLO"
	assert_line "accepted from ::ffff:198.18.0.1 on ::ffff:198.18.0.2"
	assert_line "engine opens: active 2 passive 1"
}
