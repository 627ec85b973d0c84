"""Socket Playground's tracer for Python programs (3.8 and later).

The bridge (or `bridge trace`) starts Python with this directory first on PYTHONPATH, so
Python imports this file at start, before the student's program. It wraps `socket.socket`,
`socket.getaddrinfo`, `select.select` and the selectors, and reports every call on an
internet socket, with the student's line that made it, as JSON lines on a TCP connection to
the bridge on 127.0.0.1 (SOCKET_PLAYGROUND_TRACE gives its address and the one-time secret
that opens it; each process of the program has a connection of its own). It never changes
what a call does or returns: each wrapper calls the real method and reports what happened,
also when it raised.

What the program sees is its own: the variable and this directory are removed from its
environment and sys.path at once, and a sitecustomize of its own is still imported.
"""

import os
import sys


def _install():
    where = os.environ.pop("SOCKET_PLAYGROUND_TRACE", None)
    here = os.path.dirname(os.path.abspath(__file__))
    _forget_path(here)
    if where is None:
        return
    import _socket
    import _thread
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
        host_port, secret = where.split(" ", 1)
        host, port = host_port.rsplit(":", 1)
        target = (host, int(port))
    except ValueError:
        return

    def connect():
        """A connection of this process's own to the bridge, opened by the secret (made with
        the real socket class: the channel is never traced)."""
        conn = real_socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            conn.settimeout(5)
            conn.connect(target)
            conn.settimeout(None)
            conn.sendall(secret.encode("ascii") + b"\n")
        except OSError:
            conn.close()
            raise
        return conn

    try:
        chan = connect()
    except OSError:
        return

    traced_families = (socket.AF_INET, socket.AF_INET6)
    stdlib = os.path.dirname(socket.__file__) + os.sep
    shim_file = os.path.abspath(__file__)
    max_data = 64 * 1024
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    state = {"pid": os.getpid(), "next": 0, "lost": 0, "on": True, "watching": None, "flushed": 0}
    state["pids"] = str(state["pid"])
    local = threading.local()
    fds = {}
    user_files = {}

    def now_us():
        return time.monotonic_ns() // 1000

    def is_user(frame):
        """Whether `frame` runs the student's code: not the standard library's, nor this
        file's. Judged by the module's file as well as the code's: python.org's embeddable
        Python (Windows) keeps the standard library in a zip whose code names only
        `socket.py`."""
        filename = frame.f_code.co_filename
        known = user_files.get(filename)
        if known is None:
            module = frame.f_globals.get("__file__")
            known = not (
                filename.startswith(stdlib)
                or (isinstance(module, str) and module.startswith(stdlib))
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

    site_cache = {}
    names = {}

    def site():
        """The student's line that led to this call, as the JSON of a record's `at`: the
        innermost frame outside the standard library and this file (create_connection's
        connect() is the line that called create_connection). Each line's text is looked up
        and written once; a call costs a frame walk and two dictionary lookups."""
        frame = sys._getframe(2)
        first = None
        while frame is not None:
            code = frame.f_code
            if first is None and code.co_filename != shim_file:
                first = frame
            if is_user(frame):
                break
            frame = frame.f_back
        frame = frame or first
        if frame is None:
            return "null"
        key = (frame.f_code, frame.f_lineno)
        place = site_cache.get(key)
        if place is None:
            filename = shown_name(frame.f_code.co_filename)
            try:
                text = linecache.getline(frame.f_code.co_filename, key[1]).strip()
            except Exception:
                text = ""
            place = '{"file":%s,"line":%d,"code":%s,"thread":' % (
                dumps(filename), key[1], dumps(text[:300]))
            site_cache[key] = place
        name = threading.current_thread().name
        thread = names.get(name)
        if thread is None:
            thread = names[name] = dumps(name)
        return place + thread + ',"pid":' + state["pids"] + "}"

    # Records wait here and go as one write (one line of JSON each) when the program is
    # about to block, every 100 ms, before it forks and when it exits: a write for every
    # call woke the reader for each, which cost more than the calls. One thread writes at a
    # time (a stream interleaves two writers' bytes); a flush that finds the channel busy
    # from a signal handler on the writing thread gives up rather than wait for itself.
    buf = []
    size = [0]
    locks = {"buf": _thread.allocate_lock(), "send": _thread.allocate_lock()}
    max_batch = 32 * 1024

    def flush(wait=True):
        state["flushed"] = now_us()
        with locks["buf"]:
            if not buf:
                return
            batch = "\n".join(buf) + "\n"
            del buf[:]
            size[0] = 0
        sending = locks["send"]
        if not sending.acquire(wait):
            state["lost"] += batch.count("\n")
            return
        try:
            chan.sendall(batch.encode("utf-8", "replace"))
        except InterruptedError:
            state["lost"] += batch.count("\n")
        except OSError:
            # The bridge is gone: the program goes on untraced.
            state["on"] = False
        finally:
            sending.release()

    def send(record, at=None):
        """Queues one record (its `at` already written as JSON). When the call returned is
        added here (a wait is sent before its call returns): the bridge orders the calls of
        several programs by these times."""
        if not state["on"]:
            return
        if state["lost"]:
            lost, state["lost"] = state["lost"], 0
            send({"op": "lost", "count": lost})
        if record["op"] != "wait":
            record["end_us"] = now_us()
            record.setdefault("t_us", record["end_us"])
        text = dumps(record)
        if at is not None:
            text = text[:-1] + ',"at":' + at + "}"
        if size[0] + len(text) > max_batch:
            flush()
        with locks["buf"]:
            buf.append(text)
            size[0] += len(text) + 1

    def push(text):
        """Queues a record already written as JSON (the fast paths')."""
        if state["lost"]:
            lost, state["lost"] = state["lost"], 0
            send({"op": "lost", "count": lost})
        if size[0] + len(text) > max_batch:
            flush()
        with locks["buf"]:
            buf.append(text)
            size[0] += len(text) + 1

    def head(data, n):
        """The base64 of the first bytes of `data` (of its first `n`, if given) and how many
        bytes there were; never raises (the call already happened: what the program gets must
        be what it returned)."""
        try:
            view = memoryview(data).cast("B")
            if n is None:
                n = len(view)
            return binascii.b2a_base64(view[:min(n, max_data)], newline=False).decode("ascii"), n
        except Exception:
            return "", n or 0

    # Calls that may block, by thread: [began, socket, call, at, reported]. A watcher thread
    # reports those still waiting after 100 ms (most return at once, and a report for each
    # would double the cost of every recv()).
    pending = {}

    def watch():
        while state["on"]:
            time.sleep(0.1)
            flush()
            now = now_us()
            for entry in list(pending.values()):
                if not entry[4] and now - entry[0] >= 100000:
                    entry[4] = True
                    record = {"op": "wait", "call": entry[2], "t_us": entry[0]}
                    if entry[1] is not None:
                        record["sock"] = entry[1]
                    send(record, entry[3])
                    flush()

    def start_watching():
        if state["watching"] != state["pid"]:
            state["watching"] = state["pid"]
            _thread.start_new_thread(watch, ())

    def waiting(began, sock_id, call, at):
        """A call that may block is about to be made: what waits is sent first, unless it
        went out less than 20 ms ago (a program in a tight request-reply loop would send a
        datagram per round trip; the watcher sends the rest within 100 ms)."""
        start_watching()
        pending[_thread.get_ident()] = [began, sock_id, call, at, False]
        if began - state["flushed"] >= 20000:
            flush()

    def address(addr):
        if isinstance(addr, tuple) and len(addr) >= 2:
            host = addr[0]
            if isinstance(host, bytes):
                host = host.decode("ascii", "replace")
            if ":" in str(host):
                return "[%s]:%s" % (host, addr[1])
            return "%s:%s" % (host, addr[1])
        return str(addr)

    def failure(record, err):
        record["error"] = type(err).__name__
        record["message"] = str(err)[:1000]
        errno = getattr(err, "errno", None)
        if isinstance(errno, int):
            record["errno"] = errno
        return record

    class Call:
        """One traced call: where it came from, when it began, and what it did."""

        __slots__ = ("op", "sock", "at", "began", "quiet", "waits")

        @classmethod
        def later(cls, sock, op, at, began):
            """The Call of a fast path's call that failed (its line and start already taken)."""
            call = cls.__new__(cls)
            call.quiet, call.op, call.sock = False, op, sock._sp_id
            call.at, call.began, call.waits = at, began, False
            return call

        def __init__(self, sock, op, wait):
            self.quiet = getattr(local, "busy", False) or not state["on"]
            if self.quiet:
                return
            self.op = op
            self.sock = sock._sp_id
            self.at = site()
            self.began = now_us()
            self.waits = wait and sock.gettimeout() != 0.0
            if self.waits:
                waiting(self.began, self.sock, op, self.at)

        def done(self, **record):
            if self.quiet:
                return
            if self.waits:
                pending.pop(_thread.get_ident(), None)
            record["op"] = self.op
            record["sock"] = self.sock
            record["t_us"] = self.began
            send(record, self.at)

        def failed(self, sock, err, **record):
            if self.quiet:
                return
            failure(record, err)
            if isinstance(err, socket.timeout) or type(err).__name__ == "TimeoutError":
                timeout = sock.gettimeout()
                if timeout:
                    record["timeout_ms"] = int(timeout * 1000)
            self.done(**record)

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
            start_watching()
            if fileno is None and state["on"] and not getattr(local, "busy", False):
                kind = self.type & ~getattr(socket, "SOCK_NONBLOCK", 0) & ~getattr(socket, "SOCK_CLOEXEC", 0)
                send({
                    "op": "socket",
                    "sock": self._sp_id,
                    "family": "ipv6" if self.family == socket.AF_INET6 else "ipv4",
                    "transport": "udp" if kind == socket.SOCK_DGRAM else "tcp",
                }, site())

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

        # send, sendall, recv and recv_into are what a program does most: their records are
        # written directly, without a Call or a dictionary (each of those cost microseconds a
        # call; issue 16's benchmark holds tracing to half the time of an untraced program).
        def _send(self, method, data, *args):
            if getattr(local, "busy", False) or not state["on"]:
                return method(self, data, *args)
            at = site()
            began = now_us()
            try:
                result = method(self, data, *args)
            except BaseException as err:
                Call.later(self, "send", at, began).failed(self, err)
                raise
            payload, n = head(data, result)
            push('{"op":"send","sock":"%s","t_us":%d,"end_us":%d,"data":"%s","len":%d,"at":%s}' % (
                self._sp_id, began, now_us(), payload, n, at))
            return result

        def send(self, data, *args):
            if self._sp_id is None:
                return real_socket.send(self, data, *args)
            return self._send(real_socket.send, data, *args)

        def sendall(self, data, *args):
            if self._sp_id is None:
                return real_socket.sendall(self, data, *args)
            return self._send(real_socket.sendall, data, *args)

        def _received(self, method, buffer, *args):
            """recv (buffer None) or recv_into: the call, its wait, and its record."""
            if getattr(local, "busy", False) or not state["on"]:
                return method(self, *args) if buffer is None else method(self, buffer, *args)
            at = site()
            began = now_us()
            blocks = self.gettimeout() != 0.0
            if blocks:
                waiting(began, self._sp_id, "recv", at)
            try:
                result = method(self, *args) if buffer is None else method(self, buffer, *args)
            except BaseException as err:
                if blocks:
                    pending.pop(_thread.get_ident(), None)
                Call.later(self, "recv", at, began).failed(self, err)
                raise
            if blocks:
                pending.pop(_thread.get_ident(), None)
            if buffer is None:
                payload, n = head(result, None)
            else:
                payload, n = head(buffer, result)
            push('{"op":"recv","sock":"%s","t_us":%d,"end_us":%d,"data":"%s","len":%d,"at":%s}' % (
                self._sp_id, began, now_us(), payload, n, at))
            return result

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
            payload, n = head(data, result)
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
                first = os.pread(file.fileno(), min(sent, max_data), start)
            except (OSError, AttributeError, ValueError):
                first = b""
            payload, _ = head(first, None)
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
            if self._sp_id is None:
                return real_socket.recv(self, *args)
            return self._received(real_socket.recv, None, *args)

        def recv_into(self, buffer, *args):
            if self._sp_id is None:
                return real_socket.recv_into(self, buffer, *args)
            return self._received(real_socket.recv_into, buffer, *args)

        def recvfrom(self, *args):
            if not self._traced():
                return real_socket.recvfrom(self, *args)
            call, (data, addr) = self._recv("recvfrom", real_socket.recvfrom, *args)
            payload, n = head(data, None)
            call.done(data=payload, len=n, peer=address(addr), local=sockname(self))
            return data, addr

        def recvfrom_into(self, buffer, *args):
            if not self._traced():
                return real_socket.recvfrom_into(self, buffer, *args)
            call, (n, addr) = self._recv("recvfrom", real_socket.recvfrom_into, buffer, *args)
            payload, _ = head(buffer, n)
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
            send(failure({"op": "call", "call": "getaddrinfo", "detail": detail, "t_us": start}, err), at)
            raise
        found = []
        for entry in result:
            text = address(entry[4])
            if text not in found:
                found.append(text)
        send({"op": "call", "call": "getaddrinfo", "t_us": start,
              "detail": "%s gave %s" % (detail, ", ".join(found[:8]) or "nothing")}, at)
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
            waiting(start, None, "select", at)
        try:
            ready = real_select(rlist, wlist, xlist, *timeout)
        except BaseException as err:
            pending.pop(_thread.get_ident(), None)
            send(failure({"op": "call", "call": "select", "detail": "select()", "t_us": start}, err), at)
            raise
        pending.pop(_thread.get_ident(), None)
        count = len(ready[0]) + len(ready[1]) + len(ready[2])
        send({"op": "call", "call": "select", "t_us": start,
              "detail": "select() on %d socket%s: %d ready" % (len(watched), "" if len(watched) == 1 else "s", count)}, at)
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
                waiting(start, None, "select", at)
            try:
                ready = real(self, timeout)
            finally:
                pending.pop(_thread.get_ident(), None)
            send({"op": "call", "call": "select", "t_us": start,
                  "detail": "%s.select() on %d socket%s: %d ready" % (
                      cls.__name__, len(fds_watched), "" if len(fds_watched) == 1 else "s", len(ready))}, at)
            return ready

        cls.select = select

    def report_exception(kind, value, tb):
        """An exception nobody caught ends the program (or a thread): reported with the
        student's line it came from, and its traceback."""
        try:
            import traceback
            at = None
            for frame, line in reversed(list(traceback.walk_tb(tb))):
                if is_user(frame):
                    filename = frame.f_code.co_filename
                    at = {"file": shown_name(filename), "line": line or 0,
                          "code": linecache.getline(filename, line or 0).strip()[:300],
                          "thread": threading.current_thread().name, "pid": state["pid"]}
                    break
            text = "".join(traceback.format_exception(kind, value, tb))
            send(failure({"op": "exception", "traceback": text[-8000:]}, value),
                 dumps(at) if at else None)
            flush()
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
        nonlocal chan
        parent = state["pid"]
        # Another thread may have held a lock at the fork: this process's are new. The
        # parent's connection stays the parent's; this process opens its own.
        locks["buf"] = _thread.allocate_lock()
        locks["send"] = _thread.allocate_lock()
        chan.close()
        try:
            chan = connect()
        except OSError:
            state["on"] = False
            return
        state["pid"] = os.getpid()
        state["pids"] = str(state["pid"])
        state["next"] = 0
        # The watcher thread stayed in the parent; this process starts its own when needed.
        pending.clear()
        del buf[:]
        size[0] = 0
        send({"op": "fork", "detail": str(parent)}, site())

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
        os.register_at_fork(before=flush, after_in_child=after_fork)
    # What is queued goes out when the program ends, also through os._exit (as forked
    # children of multiprocessing end).
    import atexit
    atexit.register(flush)
    real_exit = os._exit

    def exit_now(status):
        flush()
        real_exit(status)

    os._exit = exit_now

    # The bridge stops a program with SIGTERM, which ends Python without atexit: what it
    # did since the watcher's last flush (up to 100 ms of calls) is sent first, then it ends
    # by the signal as it would have. A program's own SIGTERM handler replaces this one.
    import signal

    def on_term(signum, frame):
        flush(False)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    try:
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, on_term)
    except (ValueError, OSError):
        pass


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
