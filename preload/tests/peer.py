#!/usr/bin/python3
"""Kernel-side peers for behaviour.c (run WITHOUT the preload), on 198.18.0.1:
9001 echo · 9002 read a little, then RST · 9003 send "hello", FIN, count what
comes · 9005 accept and stay silent · 9006 send "bye", FIN, then RST.
Nothing listens on 9004."""
import socket, struct, threading, sys, time
H = sys.argv[1] if len(sys.argv) > 1 else "198.18.0.1"
def srv(port, fn):
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((H, port)); l.listen(64)
    def loop():
        while True:
            c, _ = l.accept()
            threading.Thread(target=fn, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
def echo(c):
    while True:
        d = c.recv(65536)
        if not d: break
        c.sendall(d)
    c.close()
def rst(c):
    c.recv(10); time.sleep(0.1)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
def half(c):
    c.sendall(b"hello"); c.shutdown(socket.SHUT_WR)
    n = 0
    while True:
        d = c.recv(65536)
        if not d: break
        n += len(d)
    print("half: got", n, flush=True); c.close()
def fin_rst(c):
    c.sendall(b"bye"); c.shutdown(socket.SHUT_WR); time.sleep(0.2)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
keep = []
def silent(c): keep.append(c)
srv(9001, echo); srv(9002, rst); srv(9003, half); srv(9005, silent); srv(9006, fin_rst)
print("peers up", flush=True)
time.sleep(600)
