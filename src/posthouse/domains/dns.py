"""The one DNS resolver factory, shared by domain verification and direct MX delivery.

POSTHOUSE_DNS_RESOLVERS lists nameservers (``10.0.0.53``, ``127.0.0.1:5353``,
``[::1]:53``); empty means the system's /etc/resolv.conf.
"""

import dns.asyncresolver
import dns.nameserver
import dns.resolver

from posthouse.config import Settings


def split_host_port(value: str, *, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest.removeprefix(":") or default_port)
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, int(port)
    return value, default_port


def parse_nameserver(value: str) -> tuple[str, int]:
    return split_host_port(value, default_port=53)


def create_resolver(settings: Settings) -> dns.asyncresolver.Resolver:
    """An async resolver using the configured nameservers; built at start-up, not import."""
    if not settings.dns_resolvers:
        resolver = dns.asyncresolver.Resolver()
    else:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(host, port)
            for host, port in map(parse_nameserver, settings.dns_resolvers)
        ]
    resolver.timeout = settings.dns_timeout_seconds
    resolver.lifetime = settings.dns_timeout_seconds * 2
    resolver.cache = dns.resolver.LRUCache()
    return resolver
