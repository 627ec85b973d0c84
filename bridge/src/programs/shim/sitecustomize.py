"""Socket Playground's tracer for Python programs (3.8 and later).

The bridge (or `bridge trace`) starts Python with this directory first on PYTHONPATH, so
Python imports this file at start, before the student's program. It wraps `socket.socket`,
`socket.getaddrinfo`, `select.select` and the selectors, and reports every call on an
internet socket, with the student's line that made it, as one JSON record per datagram on
the Unix socket named by SOCKET_PLAYGROUND_TRACE_FD. It never changes what a call does or
returns: each wrapper calls the real method and reports what happened, also when it raised.

What the program sees is its own: the variable and this directory are removed from its
environment and sys.path at once, and a sitecustomize of its own is still imported.
"""

import os
import sys


def _install():
    fd = os.environ.pop("SOCKET_PLAYGROUND_TRACE_FD", None)
    here = os.path.dirname(os.path.abspath(__file__))
    _forget_path(here)
    if fd is None:
        return
    import _socket
    import binascii
    import json
    import linecache
    import select
    import selectors
    import socket
    import threading
    import time

    real_socket = socket.socket
    real_getaddrinfo = socket.getaddrinfo
    real_select = select.select
    try:
        chan = real_socket(fileno=int(fd))
    except (OSError, ValueError):
        return
    if chan.family != socket.AF_UNIX or chan.type != socket.SOCK_DGRAM:
        chan.detach()
        return
    os.set_inheritable(chan.fileno(), False)

    traced_families = (socket.AF_INET, socket.AF_INET6)
    stdlib = os.path.dirname(socket.__file__) + os.sep
    shim_file = os.path.abspath(__file__)
    max_data = 64 * 1024
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    state = {"pid": os.getpid(), "next": 0, "lost": 0, "on": True}
    local = threading.local()
    fds = {}
    user_files = {}

    def now_us():
        return time.monotonic_ns() // 1000

    def is_user(filename):
        known = user_files.get(filename)
        if known is None:
            known = not (
                filename.startswith(stdlib)
                or filename.startswith("<")
                or os.path.abspath(filename) == shim_file
            )
            user_files[filename] = known
        return known

    cwd = os.getcwd() + os.sep
    shown_names = {}

    def shown_name(filename):
        """The file as the student names it: relative to where the program runs, when it
        is there (Python makes the main script's path absolute)."""
        shown = shown_names.get(filename)
        if shown is None:
            shown = filename[len(cwd):] if filename.startswith(cwd) else filename
            shown_names[filename] = shown
        return shown

    def site():
        """The student's line that led to this call: the innermost frame outside the
        standard library and this file (create_connection's connect() is the line that
        called create_connection)."""
        frame = sys._getframe(2)
        first = None
        while frame is not None:
            code = frame.f_code
            if first is None and code.co_filename != shim_file:
                first = frame
            if is_user(code.co_filename):
                break
            frame = frame.f_back
        frame = frame or first
        if frame is None:
            return None
        filename = shown_name(frame.f_code.co_filename)
        line = frame.f_lineno
        try:
            text = linecache.getline(filename, line).strip()
        except Exception:
            text = ""
        return {
            "file": filename,
            "line": line,
            "code": text[:300],
            "thread": threading.current_thread().name,
            "pid": state["pid"],
        }

    def send(record):
        if not state["on"]:
            return
        if state["lost"]:
            lost, state["lost"] = state["lost"], 0
            send({"op": "lost", "count": lost})
        # When the call returned (a wait is sent before its call): the bridge orders the calls
        # of several programs by these times.
        if record["op"] != "wait":
            record["end_us"] = now_us()
            record.setdefault("t_us", record["end_us"])
        try:
            chan.send(dumps(record).encode("utf-8", "replace"))
        except InterruptedError:
            state["lost"] += 1
        except OSError:
            # The bridge is gone: the program goes on untraced.
            state["on"] = False

    def address(addr):
        if isinstance(addr, tuple) and len(addr) >= 2:
            host = addr[0]
            if isinstance(host, bytes):
                host = host.decode("ascii", "replace")
            if ":" in str(host):
                return "[%s]:%s" % (host, addr[1])
            return "%s:%s" % (host, addr[1])
        return str(addr)

    def encode(data):
        view = memoryview(data).cast("B")
        return binascii.b2a_base64(view[:max_data], newline=False).decode("ascii"), len(view)

    def failure(record, err):
        record["error"] = type(err).__name__
        record["message"] = str(err)[:1000]
        errno = getattr(err, "errno", None)
        if isinstance(errno, int):
            record["errno"] = errno
        return record

    class Call:
        """One traced call: where it came from, and the record that reports it."""

        __slots__ = ("record", "quiet")

        def __init__(self, sock, op, wait):
            self.quiet = getattr(local, "busy", False) or not state["on"]
            if self.quiet:
                return
            self.record = {"op": op, "sock": sock._sp_id, "at": site(), "t_us": now_us()}
            if wait and sock.gettimeout() != 0.0:
                send({"op": "wait", "sock": sock._sp_id, "call": op,
                      "at": self.record["at"], "t_us": self.record["t_us"]})

        def done(self, **fields):
            if not self.quiet:
                self.record.update(fields)
                send(self.record)

        def failed(self, sock, err, **fields):
            if self.quiet:
                return
            self.record.update(fields)
            failure(self.record, err)
            if isinstance(err, socket.timeout) or type(err).__name__ == "TimeoutError":
                timeout = sock.gettimeout()
                if timeout:
                    self.record["timeout_ms"] = int(timeout * 1000)
            send(self.record)

    def new_id():
        state["next"] += 1
        return "%d:%d" % (state["pid"], state["next"])

    def sockname(sock):
        try:
            return address(sock.getsockname())
        except OSError:
            return None

    def peername(sock):
        try:
            return address(sock.getpeername())
        except OSError:
            return None

    class TracedSocket(real_socket):
        """socket.socket, reporting each call on an internet socket."""

        __slots__ = ("_sp_id",)

        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
            real_socket.__init__(self, family, type, proto, fileno)
            self._sp_id = None
            if self.family not in traced_families:
                return
            self._sp_id = new_id()
            fds[self.fileno()] = self._sp_id
            if fileno is None and state["on"] and not getattr(local, "busy", False):
                kind = self.type & ~getattr(socket, "SOCK_NONBLOCK", 0) & ~getattr(socket, "SOCK_CLOEXEC", 0)
                send({
                    "op": "socket",
                    "sock": self._sp_id,
                    "family": "ipv6" if self.family == socket.AF_INET6 else "ipv4",
                    "transport": "udp" if kind == socket.SOCK_DGRAM else "tcp",
                    "at": site(),
                })

        def _traced(self):
            return self._sp_id is not None

        def bind(self, addr):
            if not self._traced():
                return real_socket.bind(self, addr)
            call = Call(self, "bind", False)
            try:
                real_socket.bind(self, addr)
            except BaseException as err:
                call.failed(self, err, local=address(addr))
                raise
            call.done(local=sockname(self))

        def listen(self, *backlog):
            if not self._traced():
                return real_socket.listen(self, *backlog)
            call = Call(self, "listen", False)
            try:
                real_socket.listen(self, *backlog)
            except BaseException as err:
                call.failed(self, err)
                raise
            call.done(backlog=backlog[0] if backlog else min(socket.SOMAXCONN, 128),
                      local=sockname(self))

        def accept(self):
            if not self._traced():
                return real_socket.accept(self)
            call = Call(self, "accept", True)
            try:
                conn, addr = real_socket.accept(self)
            except BaseException as err:
                call.failed(self, err)
                raise
            call.done(new=conn._sp_id, local=sockname(conn), peer=address(addr))
            return conn, addr

        def _connect(self, addr, method):
            call = Call(self, "connect", True)
            try:
                result = method(self, addr)
            except BaseException as err:
                call.failed(self, err, peer=address(addr), local=sockname(self))
                raise
            if result:
                err = OSError(result, os.strerror(result))
                call.failed(self, err, peer=address(addr), local=sockname(self))
            else:
                call.done(local=sockname(self), peer=peername(self) or address(addr))
            return result

        def connect(self, addr):
            if not self._traced():
                return real_socket.connect(self, addr)
            self._connect(addr, real_socket.connect)

        def connect_ex(self, addr):
            if not self._traced():
                return real_socket.connect_ex(self, addr)
            return self._connect(addr, real_socket.connect_ex)

        def _send(self, op, method, data, *args):
            call = Call(self, op, False)
            try:
                result = method(self, data, *args)
            except BaseException as err:
                call.failed(self, err)
                raise
            sent = len(memoryview(data).cast("B")) if result is None else result
            payload, n = encode(memoryview(data).cast("B")[:sent])
            call.done(data=payload, len=n)
            return result

        def send(self, data, *args):
            if not self._traced():
                return real_socket.send(self, data, *args)
            return self._send("send", real_socket.send, data, *args)

        def sendall(self, data, *args):
            if not self._traced():
                return real_socket.sendall(self, data, *args)
            return self._send("send", real_socket.sendall, data, *args)

        def sendto(self, data, *args):
            if not self._traced():
                return real_socket.sendto(self, data, *args)
            call = Call(self, "sendto", False)
            target = address(args[-1]) if args else None
            try:
                result = real_socket.sendto(self, data, *args)
            except BaseException as err:
                call.failed(self, err, peer=target)
                raise
            payload, n = encode(memoryview(data).cast("B")[:result])
            call.done(data=payload, len=n, peer=target, local=sockname(self))
            return result

        def sendfile(self, file, offset=0, count=None):
            if not self._traced():
                return real_socket.sendfile(self, file, offset, count)
            call = Call(self, "send", False)
            start = offset or (file.tell() if hasattr(file, "tell") else 0)
            local.busy = True
            try:
                sent = real_socket.sendfile(self, file, offset, count)
            except BaseException as err:
                local.busy = False
                call.failed(self, err)
                raise
            local.busy = False
            try:
                head = os.pread(file.fileno(), min(sent, max_data), start)
            except (OSError, AttributeError, ValueError):
                head = b""
            payload, _ = encode(head)
            call.done(data=payload, len=sent, call="sendfile")
            return sent

        def _recv(self, op, method, *args):
            call = Call(self, op, True)
            try:
                result = method(self, *args)
            except BaseException as err:
                call.failed(self, err)
                raise
            return call, result

        def recv(self, *args):
            if not self._traced():
                return real_socket.recv(self, *args)
            call, data = self._recv("recv", real_socket.recv, *args)
            payload, n = encode(data)
            call.done(data=payload, len=n)
            return data

        def recv_into(self, buffer, *args):
            if not self._traced():
                return real_socket.recv_into(self, buffer, *args)
            call, n = self._recv("recv", real_socket.recv_into, buffer, *args)
            payload, _ = encode(memoryview(buffer).cast("B")[:n])
            call.done(data=payload, len=n)
            return n

        def recvfrom(self, *args):
            if not self._traced():
                return real_socket.recvfrom(self, *args)
            call, (data, addr) = self._recv("recvfrom", real_socket.recvfrom, *args)
            payload, n = encode(data)
            call.done(data=payload, len=n, peer=address(addr), local=sockname(self))
            return data, addr

        def recvfrom_into(self, buffer, *args):
            if not self._traced():
                return real_socket.recvfrom_into(self, buffer, *args)
            call, (n, addr) = self._recv("recvfrom", real_socket.recvfrom_into, buffer, *args)
            payload, _ = encode(memoryview(buffer).cast("B")[:n])
            call.done(data=payload, len=n, peer=address(addr), local=sockname(self))
            return n, addr

        def shutdown(self, how):
            if not self._traced():
                return real_socket.shutdown(self, how)
            call = Call(self, "shutdown", False)
            try:
                real_socket.shutdown(self, how)
            except BaseException as err:
                call.failed(self, err)
                raise
            names = {socket.SHUT_RD: "SHUT_RD", socket.SHUT_WR: "SHUT_WR", socket.SHUT_RDWR: "SHUT_RDWR"}
            call.done(detail=names.get(how, str(how)))

        def _real_close(self, _ss=_socket.socket):
            sock_id = getattr(self, "_sp_id", None)
            if sock_id is not None and self.fileno() >= 0:
                try:
                    fds.pop(self.fileno(), None)
                    call = Call(self, "close", False)
                    call.done()
                except Exception:
                    pass
            _ss.close(self)

        def detach(self):
            if self._traced():
                fds.pop(self.fileno(), None)
                Call(self, "close", False).done(detail="detach()")
            return real_socket.detach(self)

        def _option(self, name, detail, method, *args):
            call = Call(self, "call", False)
            try:
                result = method(self, *args)
            except BaseException as err:
                call.failed(self, err, call=name, detail=detail)
                raise
            call.done(call=name, detail=detail)
            return result

        def settimeout(self, value):
            if not self._traced():
                return real_socket.settimeout(self, value)
            return self._option("settimeout", "settimeout(%r)" % (value,), real_socket.settimeout, value)

        def setblocking(self, flag):
            if not self._traced():
                return real_socket.setblocking(self, flag)
            return self._option("setblocking", "setblocking(%r)" % (flag,), real_socket.setblocking, flag)

        def setsockopt(self, level, option, *value):
            if not self._traced():
                return real_socket.setsockopt(self, level, option, *value)
            detail = "setsockopt(%s, %s, %s)" % (
                option_name(level, "SOL_", "IPPROTO_"),
                option_name(option, "SO_", "TCP_") if level != socket.IPPROTO_IPV6 else option,
                ", ".join(repr(v) for v in value),
            )
            return self._option("setsockopt", detail, real_socket.setsockopt, level, option, *value)

    def option_name(value, *prefixes):
        for name in dir(socket):
            if name.startswith(prefixes) and getattr(socket, name) == value:
                return name
        return str(value)

    def getaddrinfo(host, port, *args, **kwargs):
        if getattr(local, "busy", False) or not state["on"]:
            return real_getaddrinfo(host, port, *args, **kwargs)
        at = site()
        start = now_us()
        detail = "getaddrinfo(%r, %r)" % (host, port)
        try:
            result = real_getaddrinfo(host, port, *args, **kwargs)
        except BaseException as err:
            send(failure({"op": "call", "call": "getaddrinfo", "detail": detail, "at": at, "t_us": start}, err))
            raise
        found = []
        for entry in result:
            text = address(entry[4])
            if text not in found:
                found.append(text)
        send({"op": "call", "call": "getaddrinfo", "at": at, "t_us": start,
              "detail": "%s gave %s" % (detail, ", ".join(found[:8]) or "nothing")})
        return result

    def traced_ids(objects):
        ids = []
        for obj in objects:
            try:
                fd = obj if isinstance(obj, int) else obj.fileno()
            except (AttributeError, OSError, ValueError):
                continue
            if fd in fds:
                ids.append(fds[fd])
        return ids

    def select_(rlist, wlist, xlist, *timeout):
        watched = traced_ids(list(rlist) + list(wlist) + list(xlist))
        if not watched or getattr(local, "busy", False) or not state["on"]:
            return real_select(rlist, wlist, xlist, *timeout)
        at = site()
        start = now_us()
        blocking = not timeout or timeout[0] is None or timeout[0] > 0
        if blocking:
            send({"op": "wait", "call": "select", "at": at, "t_us": start})
        try:
            ready = real_select(rlist, wlist, xlist, *timeout)
        except BaseException as err:
            send(failure({"op": "call", "call": "select", "detail": "select()", "at": at, "t_us": start}, err))
            raise
        count = len(ready[0]) + len(ready[1]) + len(ready[2])
        send({"op": "call", "call": "select", "at": at, "t_us": start,
              "detail": "select() on %d socket%s: %d ready" % (len(watched), "" if len(watched) == 1 else "s", count)})
        return ready

    def traced_selector(cls):
        real = cls.select

        def select(self, timeout=None):
            fds_watched = traced_ids(list(self.get_map() or {}))
            if not fds_watched or getattr(local, "busy", False) or not state["on"]:
                return real(self, timeout)
            at = site()
            start = now_us()
            if timeout is None or timeout > 0:
                send({"op": "wait", "call": "select", "at": at, "t_us": start})
            ready = real(self, timeout)
            send({"op": "call", "call": "select", "at": at, "t_us": start,
                  "detail": "%s.select() on %d socket%s: %d ready" % (
                      cls.__name__, len(fds_watched), "" if len(fds_watched) == 1 else "s", len(ready))})
            return ready

        cls.select = select

    def report_exception(kind, value, tb):
        """An exception nobody caught ends the program (or a thread): reported with the
        student's line it came from, and its traceback."""
        try:
            import traceback
            at = None
            for frame in reversed(traceback.extract_tb(tb)):
                if is_user(frame.filename):
                    at = {"file": shown_name(frame.filename), "line": frame.lineno or 0,
                          "code": (frame.line or "").strip()[:300],
                          "thread": threading.current_thread().name, "pid": state["pid"]}
                    break
            text = "".join(traceback.format_exception(kind, value, tb))
            send(failure({"op": "exception", "at": at, "traceback": text[-8000:]}, value))
        except Exception:
            pass

    real_excepthook = sys.excepthook
    real_thread_excepthook = getattr(threading, "excepthook", None)

    def excepthook(kind, value, tb):
        report_exception(kind, value, tb)
        real_excepthook(kind, value, tb)

    def thread_excepthook(args):
        if args.exc_type is not SystemExit:
            report_exception(args.exc_type, args.exc_value, args.exc_traceback)
        real_thread_excepthook(args)

    def after_fork():
        parent = state["pid"]
        state["pid"] = os.getpid()
        state["next"] = 0
        send({"op": "fork", "detail": str(parent)})

    socket.socket = TracedSocket
    socket.SocketType = TracedSocket
    socket.getaddrinfo = getaddrinfo
    select.select = select_
    for cls in (selectors.SelectSelector, getattr(selectors, "_PollLikeSelector", None)):
        if cls is not None:
            traced_selector(cls)
    sys.excepthook = excepthook
    if real_thread_excepthook is not None:
        threading.excepthook = thread_excepthook
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=after_fork)


def _forget_path(here):
    """Takes this directory out of sys.path and PYTHONPATH, then imports the program's own
    sitecustomize, if there is one further along the path."""
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
             if p and os.path.abspath(p) != here]
    if parts:
        os.environ["PYTHONPATH"] = os.pathsep.join(parts)
    else:
        os.environ.pop("PYTHONPATH", None)
    mine = sys.modules.pop("sitecustomize", None)
    try:
        import sitecustomize  # noqa: F401  (the program's own, if any)
    except ImportError:
        pass
    finally:
        if "sitecustomize" not in sys.modules and mine is not None:
            sys.modules["sitecustomize"] = mine


try:
    _install()
except Exception as _error:  # tracing must never stop the program
    sys.stderr.write("socket playground: tracing is off (%s)\n" % (_error,))
