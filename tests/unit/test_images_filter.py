"""repo_digests: the digest this engine pushed is the one services run, never the registry's word."""

from ansible_collections.shopstream.swarm.plugins.filter.images import repo_digests

REGISTRY = "127.0.0.1:5000"
DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def image(tags, digests):
    return {"RepoTags": tags, "RepoDigests": digests}


def test_the_push_record_of_each_component():
    images = [
        image(
            ["shopstream/frontend:1", f"{REGISTRY}/shopstream/frontend:1"], [f"{REGISTRY}/shopstream/frontend@{DIGEST}"]
        ),
        image(
            [f"{REGISTRY}/shopstream/app:2"],
            ["elsewhere:5000/shopstream/app@" + OTHER, f"{REGISTRY}/shopstream/app@{OTHER}"],
        ),
    ]
    refs = {"frontend": "shopstream/frontend:1", "app": "shopstream/app:2"}
    assert repo_digests(images, refs, REGISTRY) == {"frontend": DIGEST, "app": OTHER}


def test_an_image_never_pushed_or_absent_has_no_digest():
    images = [
        image(["shopstream/redis:3"], []),
        image(["shopstream/nginx:4"], [f"other:5000/shopstream/nginx@{DIGEST}"]),
    ]
    refs = {"redis": "shopstream/redis:3", "nginx": "shopstream/nginx:4", "traefik": "shopstream/traefik:5"}
    assert repo_digests(images, refs, REGISTRY) == {}


def test_a_push_record_of_another_repository_does_not_count():
    images = [image(["shopstream/app:2"], [f"{REGISTRY}/shopstream/app-old@{DIGEST}"])]
    assert repo_digests(images, {"app": "shopstream/app:2"}, REGISTRY) == {}
