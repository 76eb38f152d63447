"""The server's first line, in front of every route (pure ASGI, before any body is read): the API key and the
request size.

- With an API key, every route answers 401 unless the request carries `Authorization: Bearer KEY` (compared in
  constant time); the web page's own files (`/`, `/static/...`: the same bytes for everyone, no model output) load
  without it and the page asks for the key.
- A body over `max_body_bytes` is a 413: refused from its Content-Length before it is read, or, sent in chunks
  without one, as soon as it passes the limit.
"""

from __future__ import annotations

import hmac
import json

from starlette.exceptions import HTTPException

from .errors import error_body

def _public(path: str) -> bool:
    return path == "/" or path == "/favicon.ico" or path.startswith("/static/")


class Guard:
    def __init__(self, app, api_key: str | None, max_body_bytes: int):
        self.app, self.max_body = app, max_body_bytes
        self.key = None if api_key is None else api_key.encode()

    async def _reply(self, send, status: int, message: str, headers: list | None = None) -> None:
        body = json.dumps(error_body(status, message)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                *(headers or [])]})
        await send({"type": "http.response.body", "body": body})

    def _authorised(self, headers: dict) -> bool:
        given = headers.get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.key is not None and not _public(scope["path"]) and scope["method"] != "OPTIONS":
            if not self._authorised(headers):
                which = "a wrong API key" if b"authorization" in headers else "no API key"
                return await self._reply(send, 401, f"{which}: send the header 'Authorization: Bearer KEY'",
                                         [(b"www-authenticate", b"Bearer")])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                return await self._reply(send, 400, f"Content-Length {length.decode(errors='replace')!r} is not a "
                                         "number")
            if too_big:
                return await self._reply(send, 413, f"the request body has {int(length)} bytes; this server takes at "
                                         f"most {self.max_body} (--max-body-bytes)")
            return await self.app(scope, receive, send)

        seen = 0

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:  # the route's body read fails; the app's handler answers 413
                    raise HTTPException(413, f"the request body passed {self.max_body} bytes; this server takes at "
                                             "most that (--max-body-bytes)")
            return message

        await self.app(scope, counted_receive, send)
