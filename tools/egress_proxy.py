"""The way out for an unvetted tool server: a filtering HTTP proxy on loopback.

The gateway checks a URL argument before a call, but a third-party network tool
resolves the host again itself, after that check: a DNS answer that changes in
between (rebinding) would take it to a private address. So an unvetted server's
process gets HTTP(S)_PROXY pointing here, and this proxy resolves every host
itself, checks every address (tools/ssrf.py), and connects to the address it
checked. It speaks plain-HTTP forwarding (absolute URLs) and CONNECT tunnels.

What remains possible: a server that ignores the proxy settings and opens its own
sockets is not stopped by this (no network namespace is set up); that is why an
unvetted server's network tools need the user's yes by default.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from tools.ssrf import BlockedUrl, UrlGuard

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16_384
CONNECT_TIMEOUT_S = 10.0
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")

Refused = Callable[[str, str, str], None]  # (server, target, reason)


class EgressProxy:
    """One listener per server, so a refusal is put down to the server that asked."""

    def __init__(self, guard: UrlGuard, on_refused: Refused | None = None):
        self.guard = guard
        self.on_refused = on_refused
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="egress-proxy", daemon=True)
        self._servers: list[asyncio.AbstractServer] = []
        self._started = False

    def listen_for(self, server_name: str) -> dict[str, str]:
        """Open a listener for one tool server; returns the environment that points it here."""
        sock = socket.create_server(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        if not self._started:
            self._thread.start()
            self._started = True

        async def open_listener() -> None:
            self._servers.append(await asyncio.start_server(
                lambda r, w: self._serve(server_name, r, w), sock=sock, limit=MAX_HEADER_BYTES))

        asyncio.run_coroutine_threadsafe(open_listener(), self._loop).result(10)
        url = f"http://127.0.0.1:{port}"
        return {**{name: url for name in PROXY_VARIABLES}, "NO_PROXY": "", "no_proxy": ""}

    def stop(self) -> None:
        if not self._started:
            return

        async def close() -> None:
            for server in self._servers:
                server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _serve(self, server_name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT_S)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            writer.close()
            return
        request_line, _, rest = head.decode("latin-1").partition("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3:
            await self._refuse(writer, server_name, request_line[:80], "malformed request", 400)
            return
        method, target, version = parts
        try:
            if method.upper() == "CONNECT":
                host, _, port = target.rpartition(":")
                checked = self.guard.check(f"https://{host}:{port or 443}/")
                upstream = await self._open(checked.addresses, checked.port)
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                initial = b""
            else:
                checked = self.guard.check(target)
                if urlsplit(target).scheme.lower() != "http":
                    raise BlockedUrl("only http:// URLs are forwarded; use CONNECT for https")
                upstream = await self._open(checked.addresses, checked.port)
                # The request goes to the checked address; the Host header keeps the name.
                initial = f"{method} {checked.path_and_query} {version}\r\n{rest}".encode("latin-1")
        except BlockedUrl as exc:
            await self._refuse(writer, server_name, target[:200], str(exc), 403)
            return
        except OSError as exc:
            await self._refuse(writer, server_name, target[:200], f"cannot connect ({type(exc).__name__})", 502)
            return
        up_reader, up_writer = upstream
        if initial:
            up_writer.write(initial)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)

    async def _open(self, addresses: tuple[str, ...], port: int):
        last: OSError | None = None
        for address in addresses:
            try:
                return await asyncio.wait_for(asyncio.open_connection(address, port), CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                last = exc if isinstance(exc, OSError) else OSError("timed out")
        raise last or OSError("no address")

    async def _refuse(self, writer: asyncio.StreamWriter, server_name: str, target: str, reason: str,
                      status: int) -> None:
        log.info("egress refused for tool server %s: %s (%s)", server_name, target, reason)
        if self.on_refused is not None:
            try:
                self.on_refused(server_name, target, reason)
            except Exception:  # noqa: BLE001 - an audit hook must not break the proxy
                log.exception("egress refusal hook failed")
        body = f"refused by the CozyEngine egress proxy: {reason}\n".encode()
        writer.write(f"HTTP/1.1 {status} Refused\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                     f"Connection: close\r\n\r\n".encode() + body)
        try:
            await writer.drain()
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65_536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
