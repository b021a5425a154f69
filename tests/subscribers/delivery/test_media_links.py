"""A post's media link is fetched once, uploaded and sent by id; a link we cannot or must not
fetch stays a link (Meta fetches it)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from channel.graph.media import MediaFetchError, fetch_file
from subscribers.delivery import publishing, sending
from tests.factories import make_post, make_subscriber, make_topic
from tests.subscribers.delivery.helpers import fast_sending
from topics.models import Post

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 300


class FileServer:
    """The council's web site on loopback: /manifesto (a PNG, no extension), /missing (404),
    /away (a redirect to a private address that is not the site)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802  (http.server's spelling)
                server.requests.append(self.path)
                if self.path == "/manifesto":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(PNG)))
                    self.end_headers()
                    self.wfile.write(PNG)
                elif self.path == "/away":
                    self.send_response(302)
                    self.send_header("Location", "http://10.0.0.1/secret.png")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.send_error(404)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def site(settings):
    server = FileServer()
    settings.SITE_URL = server.url  # the council's own site: the one private host allowed
    yield server
    server.close()


@pytest.fixture(autouse=True)
def fast(settings, redis_conn):
    fast_sending(settings, batch=4)


def link_post(fake_graph, n: int, url: str) -> Post:
    topic = make_topic()
    for _ in range(n):
        person = make_subscriber(topics=[topic], last_inbound_at=timezone.now())
        fake_graph.mark_inbound(person.wa_id)
    post = make_post(topics=[topic], media_kind=Post.MediaKind.IMAGE, media_url=url)
    publishing.post_publish(post=post)
    sending.drain_post(post.pk)
    return post


def test_a_link_is_fetched_once_uploaded_once_and_sent_by_id(fake_graph, site):
    link_post(fake_graph, 10, f"{site.url}/manifesto")
    images = [entry["payload"]["image"] for entry in fake_graph.outbox()]
    assert len(images) == 10 and len({image.get("id") for image in images}) == 1
    assert not any("link" in image for image in images)
    assert site.requests == ["/manifesto"]
    assert fake_graph.stats()["media_uploads"] == 1


def test_a_link_that_fails_here_stays_a_link_and_is_not_fetched_per_batch(fake_graph, site):
    link_post(fake_graph, 10, f"{site.url}/missing.png")
    images = [entry["payload"]["image"] for entry in fake_graph.outbox()]
    assert len(images) == 10 and all(image["link"].endswith("/missing.png") for image in images)
    assert site.requests == ["/missing.png"]  # three batches, one attempt
    assert fake_graph.stats()["media_uploads"] == 0


def test_no_fetch_reaches_a_private_address_other_than_the_site(fake_graph, site, settings):
    with pytest.raises(MediaFetchError, match="not a public address"):
        fetch_file(f"{site.url}/manifesto", 1000)  # loopback, and not the trusted site
    with pytest.raises(MediaFetchError, match="10.0.0.1 is not a public address"):
        fetch_file(f"{site.url}/away", 1000, trusted_host="127.0.0.1")
    with pytest.raises(MediaFetchError, match="over 100 bytes"):
        fetch_file(f"{site.url}/manifesto", 100, trusted_host="127.0.0.1")
    with pytest.raises(MediaFetchError, match="http"):
        fetch_file("file:///etc/passwd", 1000)
    assert site.requests == ["/away", "/manifesto"]
    settings.SITE_URL = "https://www.comune.example.it"
    link_post(fake_graph, 2, f"{site.url}/manifesto")
    assert len(site.requests) == 2  # the post's link was never fetched: sent as a link
    assert all("link" in e["payload"]["image"] for e in fake_graph.outbox())
