"""A TCP proxy between the emulated router and the live server that cuts or
stalls image downloads at a chosen byte (driven by bytes, not by time).

Each connection's first request is read whole (the routers' downloads are
GETs without a body) to learn its path and ``Range`` header; the answer is
forwarded byte by byte counting the body after the header. Only requests
for an operation's ``/image/`` are cut or stalled; reports pass untouched.
"""

import socket
import threading


class DownloadProxy:
    def __init__(self, target_port, cut_at=None, cuts=0, stall=False):
        self.target_port = target_port
        self.cut_at = cut_at  # body bytes forwarded before a cut
        self.cuts = cuts  # how many downloads are cut
        self.stall = stall  # downloads get no answer at all
        self.ranges = []  # the Range header of each download (None: none)
        self.body_bytes = []  # body bytes forwarded for each download
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._open = []
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self):
        self._stopped = True
        self._server.close()
        for sock in list(self._open):
            _close(sock)

    def _accept(self):
        while not self._stopped:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self._open.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        upstream = None
        try:
            request = _read_head(client)
            line, headers = _parse_head(request)
            if " /api/" not in line or "/image/" not in line:
                upstream = self._connect()
                upstream.sendall(request)
                _pipe_both(client, upstream)
                return
            with self._lock:
                index = len(self.ranges)
                self.ranges.append(headers.get("range"))
                self.body_bytes.append(0)
            if self.stall:
                client.recv(1)  # until the router gives up
                return
            upstream = self._connect()
            upstream.sendall(request)
            limit = self.cut_at if index < self.cuts else None
            self._forward_answer(upstream, client, index, limit)
        except OSError:
            pass
        finally:
            _close(client)
            if upstream is not None:
                _close(upstream)

    def _connect(self):
        sock = socket.create_connection(("127.0.0.1", self.target_port))
        self._open.append(sock)
        return sock

    def _forward_answer(self, upstream, client, index, limit):
        head = b""
        while b"\r\n\r\n" not in head:
            data = upstream.recv(65536)
            if not data:
                return
            head += data
        header, _, body = head.partition(b"\r\n\r\n")
        client.sendall(header + b"\r\n\r\n")
        while True:
            if limit is not None:
                body = body[: limit - self.body_bytes[index]]
            client.sendall(body)
            self.body_bytes[index] += len(body)
            if limit is not None and self.body_bytes[index] >= limit:
                return  # the cut: both connections close
            body = upstream.recv(65536)
            if not body:
                return


def _read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("closed before the request ended")
        data += chunk
    return data


def _parse_head(data):
    lines = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _pipe_both(client, upstream):
    def pipe(source, target):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            _close(target)

    other = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
    other.start()
    pipe(client, upstream)
    other.join(timeout=60)


def _close(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
