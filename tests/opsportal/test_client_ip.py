"""The client IP every limiter keys on: X-Forwarded-For counts only through trusted proxies."""

import ipaddress

import pytest
from django.test import RequestFactory

from opsportal.client_ip import client_ip, client_key


def request(remote="203.0.113.9", forwarded=None):
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **meta)


@pytest.fixture
def no_proxy(settings):
    settings.TRUSTED_PROXY_COUNT, settings.TRUSTED_PROXY_CIDRS = 0, []


def test_without_trusted_proxies_a_forged_header_is_ignored(no_proxy):
    assert client_ip(request(forwarded="1.2.3.4")) == "203.0.113.9"
    assert client_ip(request(forwarded="garbage, 1.2.3.4")) == "203.0.113.9"


PROXIES = [ipaddress.ip_network("10.0.0.0/8")]


def test_proxy_count_takes_the_address_our_proxy_appended(settings):
    settings.TRUSTED_PROXY_COUNT, settings.TRUSTED_PROXY_CIDRS = 1, PROXIES
    # The client forged "1.2.3.4"; our one proxy appended the real peer 198.51.100.7.
    assert client_ip(request(remote="10.0.0.2", forwarded="1.2.3.4, 198.51.100.7")) == "198.51.100.7"
    settings.TRUSTED_PROXY_COUNT = 2
    assert client_ip(request(remote="10.0.0.2", forwarded="1.2.3.4, 198.51.100.7, 10.0.0.1")) == "198.51.100.7"
    # Fewer entries than proxies: only the peer is known.
    assert client_ip(request(remote="10.0.0.2", forwarded="1.2.3.4")) == "10.0.0.2"


def test_proxy_count_believes_the_header_only_from_our_proxies(settings):
    settings.TRUSTED_PROXY_COUNT, settings.TRUSTED_PROXY_CIDRS = 1, PROXIES
    # A client that reaches the portal around the proxy forges what the proxy would have written.
    assert client_ip(request(remote="198.51.100.50", forwarded="1.2.3.4")) == "198.51.100.50"
    assert client_ip(request(remote="198.51.100.50", forwarded="1.2.3.4, 5.6.7.8")) == "198.51.100.50"


def test_proxy_count_without_networks_trusts_only_a_proxy_on_this_host(settings):
    settings.TRUSTED_PROXY_COUNT, settings.TRUSTED_PROXY_CIDRS = 1, []
    assert client_ip(request(remote="127.0.0.1", forwarded="198.51.100.7")) == "198.51.100.7"
    assert client_ip(request(remote="::1", forwarded="198.51.100.8")) == "198.51.100.8"
    assert client_ip(request(remote="10.0.0.2", forwarded="198.51.100.7")) == "10.0.0.2"


def test_proxy_cidrs_walk_from_the_right_past_our_proxies(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    settings.TRUSTED_PROXY_CIDRS = [ipaddress.ip_network("10.0.0.0/8")]
    assert client_ip(request(remote="10.0.0.2", forwarded="1.2.3.4, 198.51.100.7, 10.1.1.1")) == "198.51.100.7"
    # A peer outside the proxy ranges is the client, whatever it claims.
    assert client_ip(request(remote="198.51.100.50", forwarded="1.2.3.4")) == "198.51.100.50"
    # A garbage hop stops the walk at the last address our proxies vouched for.
    assert client_ip(request(remote="10.0.0.2", forwarded="1.2.3.4, not-an-ip")) == "10.0.0.2"


def test_ports_brackets_and_mapped_addresses_are_normalised(settings):
    settings.TRUSTED_PROXY_COUNT, settings.TRUSTED_PROXY_CIDRS = 1, PROXIES
    assert client_ip(request(remote="10.0.0.2", forwarded="198.51.100.7:5123")) == "198.51.100.7"
    assert client_ip(request(remote="10.0.0.2", forwarded="[2001:db8::5]:443")) == "2001:db8::5"
    assert client_ip(request(remote="::ffff:198.51.100.7")) == "198.51.100.7"


def test_ipv6_clients_are_keyed_by_their_64(no_proxy):
    assert client_key(request(remote="2001:db8:1:2:aaaa::1")) == "2001:db8:1:2::"
    assert client_key(request(remote="2001:db8:1:2:bbbb::9")) == "2001:db8:1:2::"
    assert client_key(request(remote="198.51.100.7")) == "198.51.100.7"


def test_a_missing_peer_address_gets_a_placeholder(no_proxy):
    assert client_ip(request(remote="")) == "0.0.0.0"
