"""registry_digests against an HTTP server answering as a V2 registry does (HEAD on manifests).

The real registry (the kit's docker-registry) is exercised by the images role's integration tests.
"""

import base64
import http.server
import socket
import threading

import pytest

from ansible_collections.shopstream.swarm.plugins.modules.registry_digests import (
    RegistryError,
    manifest_url,
    read_digests,
)

USER, PASSWORD = "shopstream", "s3cret"
HELD = {"/v2/shopstream/redis/manifests/abc": "sha256:" + "1" * 64}


class Registry(http.server.BaseHTTPRequestHandler):
    seen = []

    def do_HEAD(self):  # noqa: N802 - the standard library's name
        Registry.seen.append((self.path, self.headers.get("Accept"), self.headers.get("Authorization")))
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.send_response(401, "Unauthorized")
        elif self.path in HELD:
            self.send_response(200)
            self.send_header("Docker-Content-Digest", HELD[self.path])
        else:
            self.send_response(404, "Not Found")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def registry():
    Registry.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


ACCEPT = ["application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.index.v1+json"]


def test_held_tags_give_their_digest_and_missing_ones_none(registry):
    digests = read_digests(
        registry, ["shopstream/redis:abc", "shopstream/nginx:def"], ACCEPT, username=USER, password=PASSWORD
    )
    assert digests == {"shopstream/redis:abc": HELD["/v2/shopstream/redis/manifests/abc"], "shopstream/nginx:def": None}
    paths = [path for path, _accept, _authorization in Registry.seen]
    assert paths == ["/v2/shopstream/redis/manifests/abc", "/v2/shopstream/nginx/manifests/def"]
    assert {accept for _path, accept, _authorization in Registry.seen} == {", ".join(ACCEPT)}


def test_a_refused_login_fails_naming_the_image_and_the_answer(registry):
    with pytest.raises(RegistryError) as error:
        read_digests(registry, ["shopstream/redis:abc"], ACCEPT, username=USER, password="wrong")  # noqa: S106
    assert str(error.value) == f"shopstream/redis:abc: the registry at {registry} answered HTTP 401 Unauthorized."
    assert PASSWORD not in str(error.value) and "wrong" not in str(error.value)


def test_a_registry_that_does_not_answer_fails_naming_it():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    expected = rf"^shopstream/redis:abc: no answer from the registry at http://127.0.0.1:{port} "
    with pytest.raises(RegistryError, match=expected):
        read_digests(f"http://127.0.0.1:{port}", ["shopstream/redis:abc"], ACCEPT, timeout=2)


@pytest.mark.parametrize(
    ("image", "url"),
    [
        ("shopstream/redis:abc", "http://r:5000/v2/shopstream/redis/manifests/abc"),
        ("library/redis:7.0", "http://r:5000/v2/library/redis/manifests/7.0"),
    ],
)
def test_the_manifest_url_splits_name_and_tag(image, url):
    assert manifest_url("http://r:5000/", image) == url


@pytest.mark.parametrize("image", ["shopstream/redis", "host:5000/redis", ":abc"])
def test_a_reference_without_a_tag_is_refused(image):
    with pytest.raises(RegistryError, match="is not <name>:<tag>"):
        manifest_url("http://r:5000", image)


def test_a_registry_that_is_no_http_url_is_refused():
    with pytest.raises(RegistryError, match="is not an http:// or https:// URL"):
        manifest_url("file:///etc", "shopstream/redis:abc")
