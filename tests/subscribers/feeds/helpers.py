"""A local feed server: the council's website and the civil-protection service, on loopback.

Like the fake Graph API, it is a real HTTP server; tests choose what each path answers.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from subscribers.feeds.models import Feed
from tests.factories import make_topic

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "feeds"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def make_feed(url: str, *, kind=Feed.Kind.NEWS, mode=Feed.Mode.DRAFT, topics=None) -> Feed:
    feed = Feed.objects.create(name=f"Feed {url.rsplit('/', 1)[-1]}", url=url, kind=kind, mode=mode)
    feed.topics.set(topics or [make_topic()])
    return feed


@dataclass
class Answer:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/xml"
    etag: str = ""
    delay: float = 0.0  # seconds before the answer starts
    dribble: float = 0.0  # seconds between each 100 bytes of the body


class FeedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers: dict[str, Answer] = {}
        self.requests: Counter[str] = Counter()
        self.conditional: list[str] = []  # If-None-Match values received

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def serve(self, path: str, body: bytes = b"", **options) -> str:
        self.answers[path] = Answer(body=body, **options)
        return self.url + path

    def start(self) -> FeedServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self


class _Handler(BaseHTTPRequestHandler):
    server: FeedServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.server.requests[self.path] += 1
        answer = self.server.answers.get(self.path)
        if answer is None:
            self.send_error(404)
            return
        time.sleep(answer.delay)
        match = self.headers.get("If-None-Match")
        if match:
            self.server.conditional.append(match)
        if answer.etag and match == answer.etag:
            self.send_response(304)
            self.send_header("ETag", answer.etag)
            self.end_headers()
            return
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        if answer.etag:
            self.send_header("ETag", answer.etag)
        self.end_headers()
        try:
            if answer.dribble:
                for start in range(0, len(answer.body), 100):
                    self.wfile.write(answer.body[start : start + 100])
                    self.wfile.flush()
                    time.sleep(answer.dribble)
            else:
                self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the reader gave up, as it should

    def log_message(self, format, *args) -> None:
        pass
