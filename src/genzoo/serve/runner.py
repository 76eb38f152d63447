"""Running the app: `run` (what `genzoo serve` calls: uvicorn in the foreground until Ctrl-C) and
`BackgroundServer` (uvicorn on a loopback port in a thread, for tests, the load test and notebooks)."""

from __future__ import annotations

import socket
import threading
import time


def run(app, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5,
                timeout_keep_alive=5)


class BackgroundServer:
    """    with BackgroundServer(create_app(served)) as url:   # "http://127.0.0.1:PORT"
               httpx.get(url + "/health")
    The app's lifespan (scheduler, worker) starts before the block and stops after it."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        self.app, self.host, self.port, self.log_level = app, host, port, log_level
        self.server = self.thread = None
        self.url = None

    def __enter__(self) -> str:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level=self.log_level, lifespan="on", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True,
                                       name="genzoo-uvicorn")
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start (see its log above)")
            time.sleep(0.02)
        self.url = f"http://{self.host}:{self.port}"
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)
