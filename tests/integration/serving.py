"""A uvicorn server over a ForecastService, in a thread on a free loopback port, for the tests."""

import json
import socket
import threading
import time
import urllib.error
import urllib.request


class Server:
    """A uvicorn server in a thread, on a free loopback port."""

    def __init__(self, service, **app_options) -> None:
        import uvicorn

        from atb.serve.api import create_app

        self.service = service
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(create_app(service, **app_options), log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)

    def request(self, method: str, path: str, body=None, headers: dict | None = None, raw: bytes | None = None) -> tuple[int, dict | str]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                text = response.read().decode()
                status = response.status
        except urllib.error.HTTPError as error:
            text, status = error.read().decode(), error.code
        try:
            return status, json.loads(text)
        except json.JSONDecodeError:
            return status, text

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
