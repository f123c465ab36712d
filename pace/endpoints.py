"""
Client endpoints for Redis URLs: TCP, UNIX sockets and TLS, with
certificates verified against the host name unless the URL says otherwise.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint

from pace.config import RedisURL

#: Seconds a connection attempt may take.
CONNECT_TIMEOUT = 5


def endpoint_for(url: RedisURL, reactor: Any = None) -> IStreamClientEndpoint:
    """
    A client endpoint for ``url``; TLS certificates are verified against the
    host name unless the URL turned verification off.
    """
    if reactor is None:
        from twisted.internet import reactor
    if url.scheme == "unix":
        return UNIXClientEndpoint(reactor, url.path, timeout=CONNECT_TIMEOUT)
    if url.scheme == "redis+sentinel":
        raise NotImplementedError("redis+sentinel:// URLs are followed through the sentinels")
    endpoint = HostnameEndpoint(reactor, url.host, url.port, timeout=CONNECT_TIMEOUT)
    if url.tls:
        from twisted.internet import ssl

        if url.verify:
            creator = ssl.optionsForClientTLS(url.host)
        else:
            creator = ssl.CertificateOptions(verify=False)
        endpoint = wrapClientTLS(creator, endpoint)
    return endpoint
