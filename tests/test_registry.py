"""Registry references, tags and the distribution-API client (through a fake transport: a seam test)."""

from __future__ import annotations

import json

import pytest

import edgebench as eb
from edgebench.publish.registry import RegistryClient, check_tags, parse_destination


@pytest.mark.parametrize(
    ("value", "registry", "repository"),
    [("127.0.0.1:5000/edge/digits-rf", "127.0.0.1:5000", "edge/digits-rf"),
     ("registry.example.com/team/digits-rf", "registry.example.com", "team/digits-rf"),
     ("localhost:5000/digits_rf", "localhost:5000", "digits_rf")],
)
def test_destinations(value, registry, repository):
    d = parse_destination(value)
    assert (d.registry, d.repository) == (registry, repository)


@pytest.mark.parametrize(
    ("value", "message"),
    [("127.0.0.1:5000", "has no repository: give REGISTRY/REPOSITORY"),
     ("127.0.0.1:5000/edge/digits-rf:3", "has a tag: pass tags separately"),
     ("127.0.0.1:5000/Edge/Digits", "path components are lowercase"),
     ("digits-rf/model", "does not start with a registry host"),
     ("127.0.0.1:5000/edge@sha256:abc", "has a digest"),
     ("", "must be a non-empty string")],
)
def test_bad_destinations(value, message):
    with pytest.raises(eb.InvalidInputError) as err:
        parse_destination(value)
    assert message in str(err.value)


@pytest.mark.parametrize("tag", ["3", "latest", "v1.2_rc-1"])
def test_valid_tags(tag):
    assert check_tags([tag]) == [tag]


@pytest.mark.parametrize("tag", ["has space", "-lead", ".dot", "a/b", "x" * 129, "é"])
def test_invalid_tags(tag):
    with pytest.raises(eb.InvalidInputError, match="is not valid: up to 128 letters"):
        check_tags([tag])


def test_credentials_never_show_in_repr():
    assert "s3cret" not in repr(eb.Credentials("ci", "s3cret"))


def test_bearer_token_flow_and_manifest_digest():
    """A token registry (GHCR, Docker Hub) answers 401 with a Bearer challenge; the client fetches a token."""
    seen = []

    def transport(request, timeout):
        seen.append((request.full_url, request.get_header("Authorization")))
        if request.full_url.startswith("https://auth.example/token"):
            return 200, {}, json.dumps({"token": "T0K"}).encode()
        if request.get_header("Authorization") != "Bearer T0K":
            return 401, {"www-authenticate": 'Bearer realm="https://auth.example/token",service="reg",'
                                             'scope="repository:team/m:pull"'}, b""
        return 200, {"docker-content-digest": "sha256:abc"}, json.dumps({"config": {"digest": "sha256:cfg"}}).encode()

    client = RegistryClient("registry.example.com", eb.Credentials("ci", "pw"), transport=transport)
    digest, manifest = client.manifest("team/m", "3")
    assert digest == "sha256:abc" and manifest["config"]["digest"] == "sha256:cfg"
    token_url, basic = seen[1]
    assert token_url.startswith("https://auth.example/token?") and "service=reg" in token_url
    assert basic.startswith("Basic ")
    assert seen[2][1] == "Bearer T0K"


def test_loopback_registries_use_http_others_https():
    assert RegistryClient("127.0.0.1:5000").base == "http://127.0.0.1:5000"
    assert RegistryClient("localhost:5000").base == "http://localhost:5000"
    assert RegistryClient("ghcr.io").base == "https://ghcr.io"


def test_unreachable_registry_message():
    with pytest.raises(eb.PublishError) as err:
        RegistryClient("127.0.0.1:1").ping()
    assert "registry 127.0.0.1:1 is unreachable" in str(err.value)
    assert "check the address and that the registry is running" in str(err.value)
