"""The stores' asyncio HTTP client against a loopback server that answers what each test scripts,
malformed answers included: each is an HttpError (an OSError) and the next request works."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from vigil.core.stores._asynchttp import AsyncHttp, HttpError

OK = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


class Server:
    """Answers each request on a connection with the next scripted answer; b"" closes the connection
    instead of answering, and an answer saying ``Connection: close`` closes it after."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.startswith(b"Content-Length"))
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0)
                if not answer:
                    break
                writer.write(answer)
                await writer.drain()
                if b"Connection: close" in answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def run(answers: list[bytes], client_side: Callable[[AsyncHttp, Server], Awaitable[None]],
        timeout: float = 5.0) -> Server:
    server = Server(answers)

    async def main() -> None:
        listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        http = AsyncHttp("127.0.0.1", port, timeout=timeout)
        try:
            await client_side(http, server)
        finally:
            http.close()
            listening.close()

    asyncio.run(main())
    return server


def test_keeps_one_connection_for_many_requests() -> None:
    async def client(http: AsyncHttp, server: Server) -> None:
        for i in range(3):
            assert await http.request("POST", "/write?db=x", f"m v={i}".encode()) == (204, b"")

    server = run([OK] * 3, client)
    assert server.connections == 1
    assert server.requests[2].startswith(b"POST /write?db=x HTTP/1.1\r\n") and server.requests[2].endswith(b"m v=2")


def test_reads_bodies_by_length_chunked_and_to_the_close() -> None:
    async def client(http: AsyncHttp, server: Server) -> None:
        assert await http.request("POST", "/", b"a") == (400, b'{"error":"x"}')
        assert await http.request("POST", "/", b"b") == (404, b"database not found")
        assert await http.request("POST", "/", b"c") == (500, b"gone")

    answers = [b'HTTP/1.1 400 Bad Request\r\nContent-Length: 13\r\n\r\n{"error":"x"}',
               b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n8;ext=1\r\ndatabase\r\na\r\n not found\r\n"
               b"0\r\nX-Trailer: y\r\n\r\n",
               b"HTTP/1.0 500 Internal\r\n\r\ngone"]
    assert run(answers, client).connections == 1


def test_a_kept_connection_the_server_closed_is_made_again_once() -> None:
    async def client(http: AsyncHttp, server: Server) -> None:
        assert await http.request("POST", "/", b"1") == (204, b"")
        assert await http.request("POST", "/", b"2") == (204, b"")  # the server closed after the first

    answers = [b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", OK]
    assert run(answers, client).connections == 2

    async def dropped(http: AsyncHttp, server: Server) -> None:
        assert await http.request("POST", "/", b"1") == (204, b"")
        assert await http.request("POST", "/", b"2") == (204, b"")  # dropped without an answer: sent again

    server = run([OK, b"", OK], dropped)
    assert server.connections == 2 and [r[-1:] for r in server.requests] == [b"1", b"2", b"2"]


@pytest.mark.parametrize("answer, error", [
    (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP answer"),
    (b"HTTP/1.1 2O4 No Content\r\n\r\n", "not an HTTP answer"),
    (b"HTTP/1.1\r\n\r\n", "not an HTTP answer"),
    (b"HTTP/1.1 204 OK\r\nno colon here\r\n\r\n", "not an HTTP header"),
    (b"HTTP/1.1 400 Bad\r\nContent-Length: -3\r\n\r\n", "not a number"),
    (b"HTTP/1.1 400 Bad\r\nContent-Length: 99999999999\r\n\r\n", "more than this client reads"),
    (b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "not a chunk size"),
    (b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n", "more than this client reads"),
    (b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n", "longer than its size"),
    (b"HTTP/1.1 400 Bad\r\nX-Long: " + b"a" * 10_000 + b"\r\n\r\n", "over 8192 bytes"),
    (b"HTTP/1.1 204 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", "more than 100 header lines"),
    (b"HTTP/1.1 400 Bad\r\nContent-Length: 10\r\nConnection: close\r\n\r\nshort", "IncompleteReadError"),
])
def test_a_malformed_answer_is_an_error_and_the_next_request_works(answer: bytes, error: str) -> None:
    async def client(http: AsyncHttp, server: Server) -> None:
        with pytest.raises(HttpError, match=error):
            await http.request("POST", "/", b"x")
        assert await http.request("POST", "/", b"y") == (204, b"")

    server = run([answer, OK], client)  # a fresh connection's failure is not sent again
    assert [r[-1:] for r in server.requests] == [b"x", b"y"] and server.connections == 2


def test_no_answer_is_a_timeout_and_no_server_an_os_error() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(1)
        writer.close()

    async def main() -> None:
        listening = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        http = AsyncHttp("127.0.0.1", port, timeout=0.2)
        with pytest.raises(TimeoutError):
            await http.request("POST", "/", b"x")
        http.close()
        listening.close()
        await listening.wait_closed()
        with pytest.raises(HttpError, match="ConnectionRefusedError"):
            await AsyncHttp("127.0.0.1", port, timeout=2).request("POST", "/", b"x")

    asyncio.run(main())
