"""Which serving endpoints the platform may send requests to.

A deployment's endpoint URL is typed by a user, and the workers then fetch it: without a policy
that is a server-side request forgery (cloud metadata, services on the private network) and a
port scanner. `check_endpoint_url` allows only hosts and networks the operator listed (the site
passes its SERVING_ALLOWED_HOSTS), refuses link-local and metadata addresses whatever the list
says (also when a name resolves to one), and refuses credentials in the URL and numeric host
spellings (`2130706433`, `0x7f.1`) that hide an address from a reader.

Pure Python, no Django: the site, a worker or a script call it with their own list.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from typing import Callable, Iterable
from urllib.parse import urlsplit

# Link-local (AWS/GCP/Azure/OpenStack metadata at 169.254.169.254, and IPv6 fe80::/10), the AWS
# IPv6 metadata address and Alibaba Cloud's: never a serving endpoint.
ALWAYS_BLOCKED = tuple(
    ipaddress.ip_network(network)
    for network in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32", "0.0.0.0/8", "::/128")
)
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"})
# One to four dot-separated numbers (decimal, 0x-hex, 0-octal): an IPv4 address in a spelling that
# inet_aton accepts; only the canonical a.b.c.d is.
_NUMERIC_HOST = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}", re.IGNORECASE)

Resolver = Callable[[str, int], Iterable[str]]


class EndpointRefused(ValueError):
    """An endpoint URL the policy does not allow; the message says what to change."""


def resolve_addresses(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, as the HTTP client would connect to them."""
    return [info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)]


def check_endpoint_url(url: str, allowed: Iterable[str], *, resolve: Resolver = resolve_addresses) -> str:
    """Return `url` without a trailing slash if the policy allows it, else raise EndpointRefused.

    `allowed` holds host names (exact, case-insensitive), addresses and networks in CIDR notation
    (`127.0.0.0/8`, `::1`, `10.0.0.0/8`). A host listed by name is allowed whatever it resolves to,
    except a link-local or metadata address; any other host must resolve only to listed networks.
    """
    parts = urlsplit((url or "").strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EndpointRefused("The endpoint must be an http(s) URL, e.g. http://127.0.0.1:8100/v1.")
    if "@" in parts.netloc:
        raise EndpointRefused("The endpoint URL may not carry a user name or password (user:pass@).")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise EndpointRefused("The endpoint URL's port is not a number between 0 and 65535.") from None
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise EndpointRefused("The endpoint URL names no host.")
    literal = _literal_address(host)
    if literal is None and _NUMERIC_HOST.fullmatch(host):
        raise EndpointRefused("Write the endpoint's address as a.b.c.d (or a host name), not as a number.")
    if host in METADATA_HOSTS:
        raise EndpointRefused(f"{host} is a cloud metadata service, never a serving endpoint.")
    names, networks = _allowed(allowed)
    try:
        addresses = [literal] if literal is not None else [_address(text) for text in resolve(host, port)]
    except OSError:
        raise EndpointRefused(f"The endpoint's host {host} does not resolve here.") from None
    if not addresses:
        raise EndpointRefused(f"The endpoint's host {host} does not resolve here.")
    if any(_blocked(address) for address in addresses):
        raise EndpointRefused(
            "Link-local, metadata and unspecified addresses (169.254.0.0/16, fe80::/10, 0.0.0.0) are never serving endpoints."
        )
    if host in names or all(any(address in network for network in networks) for address in addresses):
        return parts.geturl().rstrip("/")
    raise EndpointRefused(
        f"{host} is not an allowed serving host: use one listed in SERVING_ALLOWED_HOSTS, or ask an admin to add it."
    )


def _literal_address(host: str):
    try:
        return _address(host.strip("[]"))
    except ValueError:
        return None


def _address(text: str):
    address = ipaddress.ip_address(text.split("%")[0])  # drop an IPv6 zone (fe80::1%eth0)
    # ::ffff:169.254.169.254 is 169.254.169.254.
    return getattr(address, "ipv4_mapped", None) or address


def _blocked(address) -> bool:
    return any(address in network for network in ALWAYS_BLOCKED if network.version == address.version)


def _allowed(entries: Iterable[str]) -> tuple[set[str], list]:
    names, networks = set(), []
    for entry in entries:
        entry = entry.strip().lower()
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            if entry:
                names.add(entry.rstrip("."))
    return names, networks
