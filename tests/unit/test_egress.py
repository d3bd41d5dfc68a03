"""Destination safety: the decision on addresses and URLs, table first, and registration.

Everything here is the decision only: no name is resolved and nothing is contacted,
which ``no_dns`` makes sure of wherever a hostname appears.
"""

from __future__ import annotations

import socket
from ipaddress import ip_address, ip_network
from typing import Any

import pytest

from app import admin
from app.egress import BLOCKED_RANGES, METADATA_ADDRESSES, EgressPolicy, egress_policy_from
from app.errors import BlockedDestination, InputError, InvalidEndpointURL
from app.models import Endpoint
from tests.unit.conftest import Harness

STRICT = EgressPolicy()


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any name lookup fails the test: the decision must not resolve anything."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"the egress decision looked up a name: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "gethostbyname", refuse)


class TestBlockedAddresses:
    """By default every address inside the machine, the network or the cloud platform is refused."""

    @pytest.mark.parametrize(
        ("address", "reason"),
        [
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("::1", "loopback"),
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.0.1", "private"),
            ("192.168.255.255", "private"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.254", "carrier-grade NAT"),
            ("169.254.1.1", "link-local"),
            ("fe80::1", "link-local"),
            ("fe80::1%eth0", "link-local"),
            ("fc00::1", "unique local"),
            ("fd12:3456:789a::1", "unique local"),
            ("fec0::1", "site-local"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("ff02::1", "multicast"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("::", "unspecified"),
            ("255.255.255.255", "reserved"),
            ("240.0.0.1", "reserved"),
            ("192.0.2.10", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("2001:db8::1", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("192.0.0.8", "IETF protocol assignment"),
            ("2001::1", "Teredo"),
            ("100::1", "discard-only"),
            ("64:ff9b:1::1", "local-use NAT64"),
            ("::127.0.0.1", "reserved"),
            ("5f00::1", "reserved"),
        ],
    )
    def test_an_address_in_a_blocked_range_is_refused_with_its_reason(
        self, address: str, reason: str
    ) -> None:
        refusal = STRICT.refusal(address)
        assert refusal is not None and reason in refusal
        with pytest.raises(BlockedDestination, match="HOOKLINE_EGRESS_ALLOW") as caught:
            STRICT.check_address(address)
        assert caught.value.address == address

    @pytest.mark.parametrize(
        ("address", "service"),
        [
            ("169.254.169.254", "instance metadata"),
            ("169.254.170.2", "ECS task metadata"),
            ("100.100.100.200", "Alibaba"),
            ("192.0.0.192", "Oracle"),
            ("168.63.129.16", "Azure"),
            ("fd00:ec2::254", "AWS instance metadata service over IPv6"),
        ],
    )
    def test_a_cloud_metadata_address_is_refused_by_name(self, address: str, service: str) -> None:
        refusal = STRICT.refusal(address)
        assert refusal is not None and service in refusal

    @pytest.mark.parametrize(
        ("address", "carried"),
        [
            ("::ffff:169.254.169.254", "169.254.169.254"),
            ("::ffff:10.0.0.1", "10.0.0.1"),
            ("::ffff:127.0.0.1", "127.0.0.1"),
            ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
            ("64:ff9b::a00:1", "10.0.0.1"),
            ("2002:a00:1::1", "10.0.0.1"),
            ("2002:7f00:1::1", "127.0.0.1"),
        ],
        ids=["mapped-metadata", "mapped-private", "mapped-loopback", "nat64-metadata",
             "nat64-private", "6to4-private", "6to4-loopback"],
    )
    def test_an_ipv6_wrapper_is_judged_by_the_ipv4_address_it_carries(
        self, address: str, carried: str
    ) -> None:
        refusal = STRICT.refusal(address)
        assert refusal is not None and f"a wrapper for {carried}" in refusal

    def test_the_message_says_which_name_resolved_to_what(self) -> None:
        with pytest.raises(BlockedDestination) as caught:
            STRICT.check_address("10.0.0.5", host="receiver.example")
        assert str(caught.value) == (
            "destination refused: receiver.example resolves to 10.0.0.5, which is a private "
            "address (RFC 1918); HOOKLINE_EGRESS_ALLOW can allow it")

    def test_something_that_is_not_an_address_is_refused(self) -> None:
        with pytest.raises(BlockedDestination, match="not an IP address"):
            STRICT.check_address("receiver.example")

    def test_every_metadata_address_is_refused(self) -> None:
        """Even the one outside every blocked range (Azure's 168.63.129.16)."""
        for address in METADATA_ADDRESSES:
            assert STRICT.refusal(address) is not None

    def test_the_blocked_ranges_are_valid_networks(self) -> None:
        assert all(net == ip_network(str(net)) for net, _ in BLOCKED_RANGES)


class TestPublicAddresses:
    """Public unicast addresses pass; the decision is all that happens, nothing is contacted."""

    @pytest.mark.parametrize(
        "address",
        ["8.8.8.8", "1.1.1.1", "93.184.215.14", "9.255.255.255", "11.0.0.0", "100.63.255.255",
         "100.128.0.0", "169.253.255.255", "172.15.255.255", "172.32.0.0", "192.167.255.255",
         "223.255.255.255", "2606:4700:4700::1111", "2a00:1450:4001:82a::200e",
         "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"],
    )
    def test_a_public_address_is_allowed(self, address: str) -> None:
        assert STRICT.refusal(address) is None
        STRICT.check_address(address)
        STRICT.check_address(ip_address(address))


class TestAllowList:
    """An allow-list network lets its addresses through, and nothing else."""

    def test_allowing_loopback_lets_loopback_through_and_nothing_more(self) -> None:
        policy = EgressPolicy.from_networks(["127.0.0.0/8"])
        assert policy.refusal("127.0.0.1") is None
        assert policy.refusal("127.1.2.3") is None
        assert policy.refusal("::ffff:127.0.0.1") is None
        assert policy.refusal("::1") is not None
        assert policy.refusal("10.0.0.1") is not None

    def test_a_bare_address_allows_that_address(self) -> None:
        policy = EgressPolicy.from_networks(["::1", "10.1.2.3"])
        assert policy.allow_networks == (ip_network("::1/128"), ip_network("10.1.2.3/32"))
        assert policy.refusal("::1") is None
        assert policy.refusal("10.1.2.3") is None
        assert policy.refusal("10.1.2.4") is not None

    def test_a_network_around_a_metadata_address_does_not_open_it(self) -> None:
        policy = EgressPolicy.from_networks(["169.254.0.0/16", "fc00::/7", "100.64.0.0/10"])
        assert policy.refusal("169.254.1.1") is None
        assert policy.refusal("fd12::1") is None
        assert policy.refusal("169.254.169.254") is not None
        assert policy.refusal("::ffff:169.254.169.254") is not None
        assert policy.refusal("fd00:ec2::254") is not None
        assert policy.refusal("100.100.100.200") is not None

    def test_naming_a_metadata_address_exactly_opens_it(self) -> None:
        policy = EgressPolicy.from_networks(["169.254.169.254/32"])
        assert policy.refusal("169.254.169.254") is None
        assert policy.refusal("169.254.169.253") is not None

    def test_the_settings_describe_the_policy(self, make_harness: Any) -> None:
        harness: Harness = make_harness(allow_http=True, egress_allow="127.0.0.0/8,::1")
        assert egress_policy_from(harness.settings) == EgressPolicy(
            allow_http=True, allow_networks=(ip_network("127.0.0.0/8"), ip_network("::1/128")))

    def test_the_default_settings_describe_the_strict_policy(self, harness: Harness) -> None:
        assert egress_policy_from(harness.settings) == STRICT


@pytest.mark.usefixtures("no_dns")
class TestUrls:
    """A URL must be https with a host and nothing surprising; a hostname is not resolved."""

    def test_an_https_url_with_a_hostname_is_accepted_unresolved(self) -> None:
        destination = STRICT.check_url("https://Receiver.Example/hooks?x=1")
        assert (destination.scheme, destination.host, destination.port) == (
            "https", "receiver.example", 443)
        assert destination.address is None

    def test_a_hostname_is_left_for_delivery_time_even_when_it_looks_local(self) -> None:
        assert STRICT.check_url("https://localhost:8443/").host == "localhost"

    def test_an_ip_literal_is_returned_as_an_address(self) -> None:
        destination = STRICT.check_url("https://[::1]:8443/hooks")
        assert (destination.host, destination.port) == ("::1", 8443)
        assert destination.address == ip_address("::1")

    def test_plain_http_is_refused_naming_the_setting_that_allows_it(self) -> None:
        with pytest.raises(BlockedDestination, match="HOOKLINE_ALLOW_HTTP=true"):
            STRICT.check_url("http://receiver.example/hooks")

    def test_plain_http_is_accepted_when_allowed(self) -> None:
        destination = EgressPolicy(allow_http=True).check_url("http://receiver.example/hooks")
        assert (destination.scheme, destination.port) == ("http", 80)

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("ftp://receiver.example/hooks", "must use https://"),
            ("https:///hooks", "has no host"),
            ("not a url", "must use https://"),
            ("https://user:pw@receiver.example/", "credentials"),
            ("https://user@receiver.example/", "credentials"),
            ("https://receiver.example:99999/", "malformed"),
            ("https://receiver.example:0/", "outside 1-65535"),
            ("https://receiver.example:http/", "malformed"),
            ("https://recei ver.example/", "malformed host"),
            ("https://127.1/", "legacy form"),
            ("https://2130706433/", "legacy form"),
            ("https://0x7f.0.0.1/", "legacy form"),
            ("https://017700000001/", "legacy form"),
        ],
        ids=["ftp", "no-host", "not-a-url", "credentials", "username", "port-too-big", "port-0",
             "port-not-a-number", "space-in-host", "short-ipv4", "decimal-ipv4", "hex-ipv4",
             "octal-ipv4"],
    )
    def test_a_bad_url_is_refused_with_the_reason(self, url: str, message: str) -> None:
        with pytest.raises(InvalidEndpointURL, match=message):
            STRICT.check_url(url)


    @pytest.mark.parametrize(
        ("url", "refusal"),
        [
            ("https://receiver.example./", None),
            ("https://b\u00fccher.example/", None),
            ("https://" + "a" * 63 + ".test/", None),
            ("https://" + ("a" * 62 + ".") * 4 + "a/", None),
            ("https://under_score.example/", None),
            ("https://a..test/", "empty label"),
            ("https://.a.test/", "empty label"),
            ("https://a.test../", "empty label"),
            ("https://" + "a" * 64 + ".test/", "label over 63 characters"),
            ("https://" + ("a" * 63 + ".") * 4 + "test/", "host over 253 characters"),
            ("https://a\u2024b.test/", "not a valid internationalised domain name"),
            ("https://\u0663.test/", "not a valid internationalised domain name"),
            ("https://b\u00fccher..test/", "not a valid internationalised domain name"),
            ("https://" + "\u00fc" * 60 + ".test/", "not a valid internationalised domain name"),
        ],
        ids=["final-dot", "idn", "label-of-63", "name-of-253", "underscore", "empty-label",
             "leading-dot", "two-final-dots", "long-label", "long-name", "one-dot-leader",
             "bidi-rule", "idn-empty-label", "idn-long-label"],
    )
    def test_a_hostname_is_accepted_only_within_dns_and_idna_limits(
        self, url: str, refusal: str | None
    ) -> None:
        if refusal is None:
            assert STRICT.check_url(url).address is None
            return
        with pytest.raises(InvalidEndpointURL, match=refusal):
            STRICT.check_url(url)


class TestRegistration:
    """Registering an endpoint applies the deployment's policy; a literal IP is judged at once."""

    @pytest.mark.parametrize(
        "url",
        ["https://127.0.0.1/hooks", "https://[::1]/hooks", "https://10.0.0.8/hooks",
         "https://169.254.169.254/latest/meta-data/", "https://[::ffff:169.254.169.254]/",
         "https://[fd00:ec2::254]/"],
    )
    def test_a_blocked_ip_literal_is_refused_and_nothing_is_written(
        self, harness: Harness, url: str
    ) -> None:
        tenant = harness.tenant()
        with pytest.raises(BlockedDestination, match="destination refused"):
            harness.endpoint(tenant, url=url)
        assert harness.count(Endpoint) == 0

    def test_plain_http_is_refused_by_default(self, harness: Harness) -> None:
        tenant = harness.tenant()
        with pytest.raises(BlockedDestination, match="plain http"):
            harness.endpoint(tenant, url="http://receiver.example/hooks")
        assert harness.count(Endpoint) == 0

    def test_a_blocked_destination_is_an_invalid_url_to_callers(self) -> None:
        assert issubclass(BlockedDestination, InvalidEndpointURL)
        assert issubclass(BlockedDestination, InputError)

    def test_without_a_policy_the_strict_one_applies(self) -> None:
        with pytest.raises(BlockedDestination):
            admin.validate_endpoint_url("http://127.0.0.1:8080/hooks")

    def test_the_allow_list_lets_a_local_receiver_register(self, make_harness: Any) -> None:
        harness: Harness = make_harness(allow_http=True, egress_allow=["127.0.0.0/8"])
        endpoint = harness.endpoint(harness.tenant(), url="http://127.0.0.1:8080/hooks")
        assert harness.endpoint_row(endpoint.id).url == "http://127.0.0.1:8080/hooks"

    @pytest.mark.usefixtures("no_dns")
    @pytest.mark.parametrize("url", ["https://a..test/", "https://" + "a" * 64 + ".test/",
                                     "https://a\u2024b.test/"])
    def test_a_hostname_dns_cannot_carry_is_refused_on_create_and_update(
        self, harness: Harness, url: str
    ) -> None:
        tenant = harness.tenant()
        with pytest.raises(InvalidEndpointURL, match="host"):
            harness.endpoint(tenant, url=url)
        assert harness.count(Endpoint) == 0
        endpoint = harness.endpoint(tenant, url="https://hooks.partner.example/in")
        with pytest.raises(InvalidEndpointURL, match="host"):
            admin.update_endpoint(harness.sessions, harness.catalogue, endpoint.id, {"url": url})
        assert harness.endpoint_row(endpoint.id).url == "https://hooks.partner.example/in"

    @pytest.mark.usefixtures("no_dns")
    def test_a_hostname_registers_without_a_lookup(self, harness: Harness) -> None:
        endpoint = harness.endpoint(harness.tenant(), url="https://hooks.partner.example/in")
        assert harness.endpoint_row(endpoint.id).url == "https://hooks.partner.example/in"
