"""A raw HTTP server on loopback for transport tests: reads each request whole, counts it, then
answers bytes as they are, or resets the connection (the network failing after oned read the call)."""
from __future__ import annotations

import socket
import threading
from typing import List, Optional


class RawServer:
    """A TCP server on loopback that reads each HTTP request whole, counts it, then answers ``raw``
    (bytes sent as they are) or, with ``raw=None``, resets the connection (RST, no answer)."""

    def __init__(self, raw: Optional[bytes] = None) -> None:
        self.raw = raw
        self.requests: List[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/RPC2"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                while length and len(body) < length[0]:
                    body += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + body)
                if self.raw is None:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                else:
                    conn.sendall(self.raw)

    def close(self) -> None:
        # shutdown() wakes the thread's accept() (close() alone leaves it blocked, the port listening).
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=5)
