"""Connection handling around early answers: a 401 (or 406) sent before the request body was
read must say `Connection: close`, so that a Digest client retries on a fresh connection."""

import socket


def _raw(server, request: bytes, body: bytes | None = None) -> bytes:
    host, port = server.host_port.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        if body is not None:
            s.sendall(body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def _headers(response: bytes) -> dict[str, str]:
    head = response.split(b"\r\n\r\n", 1)[0].decode()
    lines = head.split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}


def test_challenge_to_a_request_with_an_unread_body_closes_the_connection(server):
    body = b'{"monthsUntilExpiration":3}'
    request = (
        f"POST /api/atlas/v2/groups HTTP/1.1\r\nHost: {server.host_port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    # Headers only: the server answers before the body arrives.
    response = _raw(server, request)
    assert response.startswith(b"HTTP/1.1 401"), response[:80]
    assert _headers(response).get("connection") == "close"


def test_challenge_without_a_body_keeps_the_connection(server):
    request = f"GET /api/atlas/v2/groups HTTP/1.1\r\nHost: {server.host_port}\r\n\r\n".encode()
    response = _raw(server, request)
    assert response.startswith(b"HTTP/1.1 401"), response[:80]
    assert "connection" not in _headers(response)
