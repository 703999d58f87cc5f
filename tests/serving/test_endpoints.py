"""The endpoint policy: only listed hosts and networks; link-local and metadata addresses never,
also after DNS resolution; no credentials and no numeric spellings of an address."""
import pytest

from serving.endpoints import EndpointRefused, check_endpoint_url

ALLOWED = ["localhost", "127.0.0.0/8", "::1", "vllm"]
# DNS is outside the system under test: a table stands in for it.
DNS = {
    "localhost": ["127.0.0.1", "::1"],
    "vllm": ["172.18.0.5"],
    "rebound.example": ["169.254.169.254"],
    "mapped.example": ["::ffff:169.254.169.254"],
    "intranet.example": ["10.1.2.3"],
    "loopback.example": ["127.0.0.1"],
}


def resolve(host: str, port: int) -> list[str]:
    if host not in DNS:
        raise OSError(f"no such host {host}")
    return DNS[host]


def check(url: str, allowed=ALLOWED) -> str:
    return check_endpoint_url(url, allowed, resolve=resolve)


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://127.0.0.1:8100/v1/", "http://127.0.0.1:8100/v1"),
        ("http://localhost:8000/v1", "http://localhost:8000/v1"),
        ("http://[::1]:8000/v1", "http://[::1]:8000/v1"),
        ("http://vllm:8000/v1", "http://vllm:8000/v1"),  # the compose service, by name
        ("https://loopback.example/v1", "https://loopback.example/v1"),  # resolves into a listed network
    ],
)
def test_listed_hosts_and_hosts_resolving_into_listed_networks_are_allowed(url, expected):
    assert check(url) == expected


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://169.254.169.254/latest/meta-data/", "Link-local, metadata and unspecified addresses"),
        ("http://[fe80::1]:8000/v1", "Link-local, metadata and unspecified addresses"),
        ("http://[::ffff:169.254.169.254]/", "Link-local, metadata and unspecified addresses"),
        ("http://rebound.example/v1", "Link-local, metadata and unspecified addresses"),
        ("http://mapped.example/v1", "Link-local, metadata and unspecified addresses"),
        ("http://0.0.0.0:8000/v1", "Link-local, metadata and unspecified addresses"),
        ("http://metadata.google.internal/computeMetadata/v1/", "is a cloud metadata service"),
        ("http://user:pass@127.0.0.1:8000/v1", "may not carry a user name or password"),
        ("http://@127.0.0.1:8000/v1", "may not carry a user name or password"),
        ("http://2130706433:8000/v1", "not as a number"),
        ("http://0x7f000001/v1", "not as a number"),
        ("http://0x7f.1/v1", "not as a number"),
        ("http://0177.0.0.1/v1", "not as a number"),
        ("http://10.0.0.5:8000/v1", "10.0.0.5 is not an allowed serving host"),
        ("http://intranet.example/v1", "intranet.example is not an allowed serving host"),
        ("http://nowhere.example/v1", "does not resolve here"),
        ("http://127.0.0.1:99999/v1", "port is not a number"),
        ("ftp://127.0.0.1/v1", "must be an http(s) URL"),
        ("127.0.0.1:8000/v1", "must be an http(s) URL"),
    ],
)
def test_metadata_link_local_credentials_numeric_and_unlisted_hosts_are_refused(url, message):
    with pytest.raises(EndpointRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        check(url)


def test_link_local_is_refused_even_when_the_operator_lists_it():
    with pytest.raises(EndpointRefused, match="Link-local"):
        check("http://169.254.169.254/", allowed=["169.254.0.0/16", "0.0.0.0/0"])
    with pytest.raises(EndpointRefused, match="Link-local"):
        check("http://rebound.example/", allowed=["rebound.example"])


def test_an_operator_can_allow_a_private_network():
    assert check("http://intranet.example/v1", allowed=["10.0.0.0/8"]) == "http://intranet.example/v1"
