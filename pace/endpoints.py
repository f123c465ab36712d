"""
Client endpoints for Redis URLs: TCP, UNIX sockets and TLS with
certificates checked as redis-py checks them, and one-line explanations of
the TLS failures a connection attempt can end with.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint

from pace.config import InvalidRedisURL, RedisURL

#: Seconds a connection attempt may take.
CONNECT_TIMEOUT = 5

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def endpoint_for(url: RedisURL, reactor: Any = None) -> IStreamClientEndpoint:
    """
    A client endpoint for ``url``. For ``rediss://``, the server's
    certificate is verified against the system's CAs (or ``ssl_ca_certs``)
    and the host name, unless the URL says otherwise; see `tls_options`.
    """
    if reactor is None:
        from twisted.internet import reactor
    if url.scheme == "unix":
        return UNIXClientEndpoint(reactor, url.path, timeout=CONNECT_TIMEOUT)
    if url.scheme == "redis+sentinel":
        raise NotImplementedError("redis+sentinel:// URLs are followed through the sentinels")
    assert url.host is not None and url.port is not None
    endpoint: IStreamClientEndpoint = HostnameEndpoint(
        reactor, url.host, url.port, timeout=CONNECT_TIMEOUT
    )
    if url.tls:
        endpoint = wrapClientTLS(tls_options(url), endpoint)
    return endpoint


def tls_options(url: RedisURL) -> Any:
    """
    The client TLS options (an ``IOpenSSLClientConnectionCreator``) that
    ``url`` asks for, with redis-py's meanings:

    - ``ssl_cert_reqs=required`` (the default) and ``optional``: the chain
      must lead to a trusted CA (``ssl_ca_certs``, else the system's) and,
      unless ``ssl_check_hostname=false``, name the host. (``optional``
      verifies too: a TLS server always sends a certificate, and Python's
      ssl treats CERT_OPTIONAL as CERT_REQUIRED on the client side.)
    - ``ssl_cert_reqs=none``: no verification at all.
    - ``ssl_certfile`` (and ``ssl_keyfile``, when the key is not in the same
      file): a client certificate, for servers with ``tls-auth-clients``.
    """
    from twisted.internet import ssl

    client = _client_certificate(url)
    if not url.verify:
        if client is None:
            return ssl.CertificateOptions(verify=False)
        return ssl.CertificateOptions(
            privateKey=client.privateKey.original,
            certificate=client.original,
            verify=False,
        )
    trust = _trust_root(url) if url.ssl_ca_certs else ssl.platformTrust()
    if url.ssl_check_hostname:
        return ssl.optionsForClientTLS(url.host or "", trustRoot=trust, clientCertificate=client)
    extra: dict[str, Any] = {}
    if client is not None:
        extra = {"privateKey": client.privateKey.original, "certificate": client.original}
    return ssl.CertificateOptions(trustRoot=trust, **extra)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise InvalidRedisURL(f"cannot read {what} {path}: {e.strerror}") from None


def _trust_root(url: RedisURL) -> Any:
    from twisted.internet import ssl

    pems = _PEM_CERT.findall(_read(url.ssl_ca_certs, "ssl_ca_certs"))  # type: ignore[arg-type]
    if not pems:
        raise InvalidRedisURL(f"ssl_ca_certs={url.ssl_ca_certs} holds no PEM certificate")
    try:
        return ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(pem) for pem in pems])
    except Exception as e:
        raise InvalidRedisURL(
            f"ssl_ca_certs={url.ssl_ca_certs}: not a usable CA bundle ({e})"
        ) from None


def _client_certificate(url: RedisURL) -> Any:
    if not url.ssl_certfile:
        return None
    from twisted.internet import ssl

    pem = _read(url.ssl_certfile, "ssl_certfile")
    if url.ssl_keyfile:
        pem = pem + b"\n" + _read(url.ssl_keyfile, "ssl_keyfile")
    try:
        return ssl.PrivateCertificate.loadPEM(pem)
    except Exception as e:
        raise InvalidRedisURL(
            f"ssl_certfile={url.ssl_certfile}: not a certificate with its private key ({e})"
        ) from None


# OpenSSL's reason strings, as pyOpenSSL reports them, and what to do.
_REASONS = (
    (
        "certificate verify failed",
        "the Redis server's TLS certificate is not signed by a CA this worker "
        "trusts (certificate verify failed); for a private CA add "
        "?ssl_ca_certs=/path/to/ca.pem to the rediss:// URL",
    ),
    (
        "wrong version number",
        "the Redis server did not answer in TLS (wrong version number): is this "
        "a plain port? Use redis:// for it, or the server's tls-port",
    ),
    (
        "packet length too long",
        "the Redis server did not answer in TLS (packet length too long): is this "
        "a plain port? Use redis:// for it, or the server's tls-port",
    ),
    (
        "certificate required",
        "the Redis server wants a client certificate (tls-auth-clients): add "
        "?ssl_certfile=/path/cert.pem&ssl_keyfile=/path/key.pem to the URL",
    ),
    (
        "unknown ca",
        "the Redis server did not accept this worker's client certificate "
        "(unknown ca): use one signed by the CA in the server's tls-ca-cert-file",
    ),
    (
        "bad certificate",
        "the Redis server did not accept this worker's client certificate "
        "(bad certificate): check ssl_certfile and ssl_keyfile",
    ),
)


def describe_connection_failure(reason: Any) -> str | None:
    """
    One line naming a TLS or certificate failure and what to do about it,
    for a connection attempt that ended with ``reason`` (a `Failure` or an
    exception, as ``connectionLost`` or ``clientConnectionFailed`` get
    it); None when the failure has nothing to do with TLS.
    """
    exc = getattr(reason, "value", reason)
    try:
        from OpenSSL import SSL
    except ImportError:  # pragma: no cover - TLS is unusable then anyway
        return None
    if isinstance(exc, SSL.Error):
        text = _ssl_reasons(exc)
        for needle, message in _REASONS:
            if needle in text:
                return message
        return f"the TLS handshake with the Redis server failed ({text or exc!r})"
    if _is_hostname_mismatch(exc):
        return (
            f"the Redis server's TLS certificate does not name the host in the URL "
            f"({exc}): connect by a name the certificate holds, or add "
            "?ssl_check_hostname=false to check only the chain"
        )
    return None


def _ssl_reasons(exc: Exception) -> str:
    # pyOpenSSL: SSL.Error([(library, function, reason), ...]).
    parts = []
    for arg in exc.args:
        if isinstance(arg, list):
            for entry in arg:
                parts.append(str(entry[-1]) if isinstance(entry, tuple) and entry else str(entry))
        else:
            parts.append(str(arg))
    return "; ".join(p for p in parts if p)


def _is_hostname_mismatch(exc: Any) -> bool:
    try:
        from service_identity import VerificationError
    except ImportError:  # pragma: no cover - Twisted then checks names less well
        return False
    return isinstance(exc, VerificationError)
