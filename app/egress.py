"""Destination safety: which URLs and addresses a delivery may go to. Pure, table-first.

Two decisions, neither of which resolves a name or opens a socket:

* :meth:`EgressPolicy.check_url` applies the URL rules: ``https://`` unless plain
  http is allowed (development), a host, no credentials, a port from 1 to 65535, and
  IP literals written the one canonical way (``http://127.1/`` and
  ``http://2130706433/`` are refused rather than guessed at), and a hostname DNS can
  carry: no empty label, none over 63 characters, 253 in all, and a non-ASCII name
  that IDNA encodes the way the transport will encode it.
* :meth:`EgressPolicy.check_address` judges one IP address. Loopback, private
  (RFC 1918), shared (carrier-grade NAT), link-local, cloud metadata, multicast,
  unspecified, documentation, benchmarking and reserved addresses are refused, and so
  are IPv6 forms that carry a refused IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``,
  NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) — unless an allow-list network
  contains the address. A cloud metadata address is allowed only by an allow-list
  entry naming that single address, so allowing ``169.254.0.0/16`` for a link-local
  receiver does not open the instance metadata service.

The ranges are data (:data:`BLOCKED_RANGES`, :data:`METADATA_ADDRESSES`), tested table
first. :mod:`app.transport` resolves each hostname when it connects, checks every
address it got with this policy, and connects to the address it checked.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import idna

from app.errors import BlockedDestination, InvalidEndpointURL

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = [
    "ALLOW_HTTP_SETTING",
    "ALLOW_SETTING",
    "BLOCKED_RANGES",
    "METADATA_ADDRESSES",
    "Destination",
    "EgressPolicy",
    "egress_policy_from",
]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

#: The setting that names the networks deliveries may reach although they are blocked.
ALLOW_SETTING = "HOOKLINE_EGRESS_ALLOW"
#: The setting that lets endpoint URLs use plain http.
ALLOW_HTTP_SETTING = "HOOKLINE_ALLOW_HTTP"

#: Instance-metadata and platform services: the prize of a server-side request forgery.
#: Allowed only by an allow-list entry that is exactly the address.
METADATA_ADDRESSES: dict[IPAddress, str] = {
    ip_address("169.254.169.254"): "the cloud instance metadata service (AWS, GCP, Azure, OpenStack)",
    ip_address("169.254.170.2"): "the AWS ECS task metadata service",
    ip_address("169.254.170.23"): "the AWS EKS pod identity agent",
    ip_address("169.254.0.23"): "the Tencent Cloud metadata service",
    ip_address("100.100.100.200"): "the Alibaba Cloud metadata service",
    ip_address("192.0.0.192"): "the Oracle Cloud metadata service",
    ip_address("168.63.129.16"): "the Azure platform service (WireServer)",
    ip_address("fd00:ec2::254"): "the AWS instance metadata service over IPv6",
    ip_address("fd00:ec2::23"): "the AWS EKS pod identity agent over IPv6",
}

#: Ranges no delivery reaches unless the allow-list names them, most specific first.
BLOCKED_RANGES: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ip_network(network), reason) for network, reason in (
        ("0.0.0.0/8", "the unspecified 'this network' range (0.0.0.0 reaches this host)"),
        ("10.0.0.0/8", "a private address (RFC 1918)"),
        ("100.64.0.0/10", "a shared carrier-grade NAT address (RFC 6598)"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address (RFC 1918)"),
        ("192.0.0.0/24", "an IETF protocol assignment (RFC 6890)"),
        ("192.0.2.0/24", "a documentation address (TEST-NET-1)"),
        ("192.88.99.0/24", "the deprecated 6to4 relay anycast range"),
        ("192.168.0.0/16", "a private address (RFC 1918)"),
        ("198.18.0.0/15", "a benchmarking address (RFC 2544)"),
        ("198.51.100.0/24", "a documentation address (TEST-NET-2)"),
        ("203.0.113.0/24", "a documentation address (TEST-NET-3)"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address (including broadcast)"),
        ("::/128", "the unspecified address"),
        ("::1/128", "the loopback address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address (RFC 8215)"),
        ("100::/64", "a discard-only address (RFC 6666)"),
        ("2001::/32", "a Teredo tunnel address"),
        ("2001:2::/48", "a benchmarking address (RFC 5180)"),
        ("2001:10::/28", "an ORCHID address"),
        ("2001:20::/28", "an ORCHIDv2 address"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address (RFC 9637)"),
        ("fc00::/7", "a unique local address (fc00::/7)"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a deprecated site-local address"),
        ("ff00::/8", "a multicast address"),
    )
)

#: Every routable IPv6 unicast address is in here; the rest is reserved or special.
IPV6_GLOBAL_UNICAST = IPv6Network("2000::/3")
#: NAT64 well-known prefix: the last 32 bits are the IPv4 address being reached.
NAT64_PREFIX = IPv6Network("64:ff9b::/96")
#: DNS limits (RFC 1035): octets per label, and characters of a name written out.
MAX_LABEL_LENGTH = 63
MAX_HOSTNAME_LENGTH = 253


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a URL points, as far as can be told without resolving it."""

    scheme: str
    host: str
    port: int
    #: The host when the URL names an IP address rather than a hostname.
    address: IPAddress | None


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """The destination rules of one deployment; the default refuses everything unsafe."""

    allow_http: bool = False
    allow_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_networks(cls, networks: Iterable[str], *, allow_http: bool = False) -> EgressPolicy:
        """A policy allowing *networks* (``"127.0.0.0/8"``, ``"::1"``) on top of the defaults."""
        return cls(allow_http=allow_http,
                   allow_networks=tuple(ip_network(n, strict=True) for n in networks))

    # -- URLs ----------------------------------------------------------------------------
    def check_url(self, url: str) -> Destination:
        """The URL's destination, or ``InvalidEndpointURL`` / ``BlockedDestination`` saying why not.

        A hostname is not resolved here: that happens, and is checked, on every new
        connection. An IP literal is returned in :attr:`Destination.address` for the
        caller to put through :meth:`check_address`.
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise InvalidEndpointURL(f"endpoint URL {url!r} is malformed: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            allowed = "http:// or https://" if self.allow_http else "https://"
            raise InvalidEndpointURL(f"endpoint URL {url!r} must use {allowed}")
        if scheme == "http" and not self.allow_http:
            raise BlockedDestination(
                f"endpoint URL {url!r} uses plain http://; use https:// "
                f"({ALLOW_HTTP_SETTING}=true allows http for development)")
        host = parts.hostname
        if not host:
            raise InvalidEndpointURL(f"endpoint URL {url!r} has no host")
        if parts.username is not None or parts.password is not None:
            raise InvalidEndpointURL("endpoint URL must not carry credentials")
        if port is not None and not 1 <= port <= 65535:
            raise InvalidEndpointURL(f"endpoint URL {url!r} has port {port}, outside 1-65535")
        if any(c.isspace() or not c.isprintable() for c in host):
            raise InvalidEndpointURL(f"endpoint URL {url!r} has a malformed host")
        address = _ip_literal(host)
        if address is None and _legacy_ipv4_literal(host):
            raise InvalidEndpointURL(
                f"endpoint URL {url!r} names an IPv4 address in a legacy form; "
                "write it as four decimal numbers (a.b.c.d)")
        if address is None:
            _check_hostname(url, host)
        return Destination(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80),
                           address=address)

    # -- addresses -----------------------------------------------------------------------
    def refusal(self, address: str | IPAddress) -> str | None:
        """Why *address* may not be reached ("a loopback address"), or None if it may."""
        ip = _parse(address)
        if ip is None:
            return "not an IP address"
        forms = _forms(ip)
        for form in forms:
            if form in METADATA_ADDRESSES:
                if any(_names_exactly(net, form) for net in self.allow_networks):
                    return None
                return _wrapped(ip, form, METADATA_ADDRESSES[form])
        reason = _blocked_reason(forms)
        if reason is None:
            return None
        if any(form in net for form in forms for net in self.allow_networks
               if form.version == net.version):
            return None
        return reason

    def check_address(self, address: str | IPAddress, *, host: str | None = None) -> None:
        """Nothing if *address* may be reached; ``BlockedDestination`` with the reason if not."""
        reason = self.refusal(address)
        if reason is None:
            return
        subject = (f"{host} resolves to {address}, which" if host and host != str(address)
                   else str(address))
        hint = "" if _parse(address) is None else f"; {ALLOW_SETTING} can allow it"
        raise BlockedDestination(f"destination refused: {subject} is {reason}{hint}",
                                 address=str(address))


def egress_policy_from(settings: Settings) -> EgressPolicy:
    """The policy the settings describe."""
    return EgressPolicy.from_networks(settings.egress_allow, allow_http=settings.allow_http)


# -- helpers ----------------------------------------------------------------------------
def _parse(address: str | IPAddress) -> IPAddress | None:
    if isinstance(address, IPv4Address | IPv6Address):
        return _without_scope(address)
    try:
        return _without_scope(ip_address(address.strip("[]")))
    except ValueError:
        return None


def _without_scope(ip: IPAddress) -> IPAddress:
    """*ip* without an IPv6 zone (``fe80::1%eth0``): the zone does not change the range."""
    if isinstance(ip, IPv6Address) and ip.scope_id:
        return IPv6Address(int(ip))
    return ip


def _embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address stands for when it is only a wrapper for one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64_PREFIX:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def _forms(ip: IPAddress) -> tuple[IPAddress, ...]:
    """*ip*, then the IPv4 address it carries, if it carries one."""
    if isinstance(ip, IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return (ip, inner)
    return (ip,)


def _wrapped(ip: IPAddress, form: IPAddress, reason: str) -> str:
    return reason if ip == form else f"a wrapper for {form}, {reason}"


def _blocked_reason(forms: tuple[IPAddress, ...]) -> str | None:
    """The table's reason for the address (for a wrapper: for what it carries), or None."""
    ip, judged = forms[0], forms[-1]  # a wrapper is judged by the IPv4 address it carries
    for network, reason in BLOCKED_RANGES:
        if judged.version == network.version and judged in network:
            return _wrapped(ip, judged, reason)
    if isinstance(judged, IPv6Address) and judged not in IPV6_GLOBAL_UNICAST:
        return "a reserved address (outside global unicast 2000::/3)"
    return None


def _names_exactly(network: IPNetwork, ip: IPAddress) -> bool:
    return network.num_addresses == 1 and network.network_address == ip


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


def _check_hostname(url: str, host: str) -> None:
    """``InvalidEndpointURL`` unless *host* is a name the resolver can be asked for.

    A non-ASCII name is encoded as requests encodes it (IDNA 2008 with UTS 46
    mapping); the ASCII result must then fit DNS, as Python's resolver checks.
    """
    name = host[:-1] if host.endswith(".") else host  # one final dot: the root
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except (UnicodeError, ValueError) as exc:
            raise InvalidEndpointURL(
                f"endpoint URL {url!r} has a host that is not a valid internationalised "
                f"domain name ({exc})") from None
    labels = name.split(".")
    if "" in labels:
        raise InvalidEndpointURL(f"endpoint URL {url!r} has an empty label in its host")
    if any(len(label) > MAX_LABEL_LENGTH for label in labels):
        raise InvalidEndpointURL(
            f"endpoint URL {url!r} has a host label over {MAX_LABEL_LENGTH} characters")
    if len(name) > MAX_HOSTNAME_LENGTH:
        raise InvalidEndpointURL(
            f"endpoint URL {url!r} has a host over {MAX_HOSTNAME_LENGTH} characters")


def _legacy_ipv4_literal(host: str) -> bool:
    """True for hosts the C resolver reads as IPv4 although they are not dotted quads.

    ``127.1``, ``0x7f.0.0.1``, ``017700000001`` and ``2130706433`` all reach
    127.0.0.1. ``inet_aton`` parses them the way the resolver does, without any I/O.
    """
    if not all(c in "0123456789abcdefxABCDEFX." for c in host.rstrip(".")):
        return False
    try:
        socket.inet_aton(host.rstrip("."))
    except OSError:
        return False
    return True
