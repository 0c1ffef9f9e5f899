#!/usr/bin/python3
"""fake_utcpd.py SOCKET — a stand-in for utcpd that speaks tools/ipc.h and
serves each "engine" socket with a kernel TCP socket it relays to. Only for
testing libutcp.so alone (STYLE.md 7): the kernel's answers are the
reference the preload must reproduce. Not a daemon for anything else: one
thread, blocking sendall, no SO_PEERCRED check."""
import errno, os, selectors, socket, struct, sys, array

REQ = struct.Struct("=HHI4i128sII256s")   # 416
REP = struct.Struct("=iIq128sII256s")   # 408
assert REQ.size == 416 and REP.size == 408, (REQ.size, REP.size)
OPS = dict(HELLO=1, SOCKET=2, BIND=3, LISTEN=4, CONNECT=5, ACCEPT=6,
           GETSOCKNAME=7, GETPEERNAME=8, SETSOCKOPT=9, GETSOCKOPT=10,
           SHUTDOWN=11, IOCTL=12)
OPN = {v: k for k, v in OPS.items()}
SO_ACCEPTCONN = 30
sel = selectors.DefaultSelector()
socks = {}
next_id = [1]
log = lambda *a: print("fake:", *a, file=sys.stderr, flush=True)


def unpack_addr(raw, n):
    fam = struct.unpack_from("=H", raw)[0]
    if fam == socket.AF_INET:
        return fam, (socket.inet_ntop(fam, raw[4:8]), struct.unpack(">H", raw[2:4])[0])
    if fam == socket.AF_INET6:
        return fam, (socket.inet_ntop(fam, raw[8:24]), struct.unpack(">H", raw[2:4])[0], 0, 0)
    return fam, None


def pack_addr(fam, a):
    if fam == socket.AF_INET:
        b = struct.pack("=H", fam) + struct.pack(">H", a[1]) + socket.inet_pton(fam, a[0])
        return b.ljust(16, b"\0"), 16
    b = struct.pack("=H", fam) + struct.pack(">H", a[1]) + b"\0" * 4 + socket.inet_pton(fam, a[0]) + b"\0" * 4
    return b, 28


class S:
    def __init__(self, fam):
        self.id = next_id[0]; next_id[0] += 1
        self.fam = fam
        self.d, self.p = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.d.bind(b"\0utcp/%d/%d" % (os.getpid(), self.id))
        self.k = None
        self.err = 0
        self.opts = []
        self.listening = False
        self.queue = []
        self.kept = None
        self.filler = 0
        self.sndbuf = 0
        socks[self.id] = self

    def ksock(self):
        if self.k is None:
            self.k = socket.socket(self.fam, socket.SOCK_STREAM)
            for lv, nm, v in self.opts:
                try: self.k.setsockopt(lv, nm, v)
                except OSError as e: log("opt", lv, nm, e)
        return self.k

    def finish_connect(self, err):
        """ipc.h step 3. err: 0 connected, > 0 failed (recorded, shut
        down), -1 failed at once (the reply says why; nothing recorded)."""
        got = 0
        while got < self.filler:
            got += len(self.d.recv(self.filler - got))
        self.filler = 0
        if self.kept is not None:
            self.kept.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
            self.kept.close(); self.kept = None
        if err > 0:
            self.err = err
            self.d.shutdown(socket.SHUT_RDWR)
        elif err == 0:
            self.start_relay()

    def start_relay(self):
        self.k.setblocking(True)
        sel.register(self.k, selectors.EVENT_READ, ("k", self))
        sel.register(self.d, selectors.EVENT_READ, ("d", self))

    def close(self):
        for f in (self.k, self.d):
            if f is None: continue
            try: sel.unregister(f)
            except (KeyError, ValueError): pass
            f.close()
        socks.pop(self.id, None)


def on_k(s):
    if s.listening:
        c, a = s.k.accept()
        n = S(s.fam); n.k = c
        n.p_addr = a
        s.queue.append(n)
        s.d.send(b"t")
        return
    try:
        data = s.k.recv(65536)
    except ConnectionResetError:
        s.err = errno.ECONNRESET
        sel.unregister(s.k)
        s.d.shutdown(socket.SHUT_RDWR)
        return
    if not data:
        sel.unregister(s.k)
        s.d.shutdown(socket.SHUT_WR)
        return
    try:
        s.d.sendall(data)
    except OSError:
        s.close()


def on_d(s):
    try:
        data = s.d.recv(65536)
    except ConnectionResetError:
        s.k.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close(); return
    if not data:
        sel.unregister(s.d)
        try: s.k.shutdown(socket.SHUT_WR)
        except OSError: pass
        return
    try:
        s.k.sendall(data)
    except OSError as e:
        s.err = e.errno
        s.d.shutdown(socket.SHUT_RDWR)


def on_connecting(s):
    sel.unregister(s.k)
    e = s.k.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    log("connect outcome", s.id, errno.errorcode.get(e, e))
    s.finish_connect(e)


def handle(c, op, sid, args, addr, alen, dlen, data, fd):
    s = socks.get(sid)
    rep = dict(err=0, sid=0, val=0, addr=b"", alen=0, data=b"")
    out_fd = -1
    if op == OPS["HELLO"]:
        rep["val"] = os.getpid()
    elif op == OPS["SOCKET"]:
        n = S(args[0]); rep["sid"] = n.id; out_fd = n.p
    elif s is None:
        rep["err"] = errno.EBADF
    elif op == OPS["CONNECT"]:
        fam, a = unpack_addr(addr, alen)
        if fam == socket.AF_UNSPEC:
            rep["err"] = errno.EOPNOTSUPP
        else:
            s.kept = socket.socket(fileno=fd) if fd >= 0 else None
            s.filler, s.sndbuf = args[0], args[1]
            k = s.ksock(); k.setblocking(False)
            r = k.connect_ex(a)
            if r == errno.EINPROGRESS:
                sel.register(k, selectors.EVENT_WRITE, ("c", s))
                rep["err"] = errno.EINPROGRESS
            else:
                # at once: ipc.h wants the filler gone, SO_SNDBUF back
                s.finish_connect(0 if r == 0 else -1)
                rep["err"] = r
    elif op == OPS["BIND"]:
        fam, a = unpack_addr(addr, alen)
        try: s.ksock().bind(a)
        except OSError as e: rep["err"] = e.errno
    elif op == OPS["LISTEN"]:
        try:
            s.ksock().listen(args[0]); s.listening = True
            s.k.setblocking(False)
            sel.register(s.k, selectors.EVENT_READ, ("k", s))
        except OSError as e: rep["err"] = e.errno
    elif op == OPS["ACCEPT"]:
        if not s.queue: rep["err"] = errno.EAGAIN
        else:
            n = s.queue.pop(0); rep["sid"] = n.id
            rep["addr"], rep["alen"] = pack_addr(s.fam, n.p_addr)
            out_fd = n.p
            n.start_relay()
    elif op in (OPS["GETSOCKNAME"], OPS["GETPEERNAME"]):
        try:
            if s.k is None:
                a = ("0.0.0.0", 0) if s.fam == socket.AF_INET else ("::", 0)
                if op == OPS["GETPEERNAME"]: raise OSError(errno.ENOTCONN, "")
            else:
                a = s.k.getsockname() if op == OPS["GETSOCKNAME"] else s.k.getpeername()
            rep["addr"], rep["alen"] = pack_addr(s.fam, a)
        except OSError as e: rep["err"] = e.errno
    elif op == OPS["SETSOCKOPT"]:
        v = data[:dlen]
        if s.k is None: s.opts.append((args[0], args[1], v))
        else:
            try: s.k.setsockopt(args[0], args[1], v)
            except OSError as e: rep["err"] = e.errno
    elif op == OPS["GETSOCKOPT"]:
        lv, nm, ln = args[0], args[1], args[2]
        if lv == socket.SOL_SOCKET and nm == socket.SO_ERROR:
            rep["data"] = struct.pack("i", s.err); s.err = 0
        elif lv == socket.SOL_SOCKET and nm == SO_ACCEPTCONN:
            rep["data"] = struct.pack("i", int(s.listening))
        else:
            try: rep["data"] = s.ksock().getsockopt(lv, nm, ln)
            except OSError as e: rep["err"] = e.errno
    elif op == OPS["SHUTDOWN"]:
        if s.k is None: rep["err"] = errno.ENOTCONN
        elif args[0] in (0, 2):
            try: s.k.shutdown(socket.SHUT_RD)
            except OSError: pass
    elif op == OPS["IOCTL"]:
        import fcntl
        b = fcntl.ioctl(s.ksock(), args[0], b"\0" * 4)
        rep["val"] = struct.unpack("i", b)[0]
    else:
        rep["err"] = errno.EOPNOTSUPP
    log(OPN.get(op, op), sid, "->", errno.errorcode.get(rep["err"], rep["err"]), rep["sid"] or "")
    msg = REP.pack(rep["err"], rep["sid"], rep["val"], rep["addr"], rep["alen"], len(rep["data"]), rep["data"])
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [out_fd.fileno()]))] if out_fd != -1 else []
    c.sendmsg([msg], anc)
    if out_fd != -1:
        out_fd.close()


def on_client(c):
    try:
        msg, anc, fl, _ = c.recvmsg(REQ.size, socket.CMSG_SPACE(16))
    except ConnectionResetError:
        msg = b""
    if not msg:
        sel.unregister(c); c.close(); return
    fd = -1
    for lv, ty, d in anc:
        if lv == socket.SOL_SOCKET and ty == socket.SCM_RIGHTS:
            fd = array.array("i", d[:4])[0]
    ver, op, sid, a0, a1, a2, a3, addr, alen, dlen, data = REQ.unpack(msg)
    handle(c, op, sid, (a0, a1, a2, a3), addr, alen, dlen, data, fd)


def main():
    path = sys.argv[1]
    try: os.unlink(path)
    except FileNotFoundError: pass
    l = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    l.bind(path); l.listen(64)
    sel.register(l, selectors.EVENT_READ, ("l", None))
    log("listening on", path, "pid", os.getpid())
    while True:
        for key, ev in sel.select():
            kind, s = key.data
            if kind == "l":
                c, _ = l.accept(); sel.register(c, selectors.EVENT_READ, ("cl", c))
            elif kind == "cl": on_client(s)
            elif kind == "k": on_k(s)
            elif kind == "d": on_d(s)
            elif kind == "c": on_connecting(s)


main()
