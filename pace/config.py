"""
Where Pace finds Redis and its queues: the Redis URL, the key namespace and
queue-name expansion, resolved the way Resque and its clients resolve them.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel")
# Every password a URL parsed here carried, so that reporters (pace.sentry)
# can scrub it wherever it turns up, not only inside a URL.
_passwords: set[str] = set()


def _package():
    # pace.redis_url and pace.namespace are plain attributes of the package
    # that users assign to; read them at call time, never cache them.
    return sys.modules["pace"]


def namespaced(key: str) -> str:
    """
    Prefix a Redis key with ``pace.namespace``, Redis::Namespace style.
    """
    ns = getattr(_package(), "namespace", None)
    return f"{ns}:{key}" if ns else key


def expand_queue_name(name: str) -> str:
    """
    The Redis key of a queue: a bare name is a Resque queue
    (``resque:queue:<name>``), a name with a colon is taken as a whole key,
    as in the Ruby original. Either gets ``pace.namespace`` in front.

    A Resque queue whose name has colons (``Resque.enqueue_to "foo:bar"``)
    is named unambiguously by its whole key, ``resque:queue:foo:bar``.
    Names read from Resque's own data go through `resque_queue_key`.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a queue name must be a non-empty string, not {name!r}")
    return namespaced(name if ":" in name else f"resque:queue:{name}")


def resque_queue_key(name: str) -> str:
    """
    The Redis key of the Resque queue called ``name``, colons and all: for
    names read from ``resque:queues`` or a failure record's ``queue``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a queue name must be a non-empty string, not {name!r}")
    return namespaced(f"resque:queue:{name}")


def short_queue_name(key: str) -> str:
    """
    The name Resque lists in ``resque:queues`` for an expanded queue key.
    """
    ns = getattr(_package(), "namespace", None)
    if ns and key.startswith(ns + ":"):
        key = key[len(ns) + 1 :]
    prefix = "resque:queue:"
    return key[len(prefix) :] if key.startswith(prefix) else key


@dataclass(frozen=True)
class RedisURL:
    """
    A parsed Redis URL. ``str()`` and ``repr()`` never show the password.
    """

    scheme: str
    host: str | None = None
    port: int | None = None
    path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    verify: bool = True
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str | None = None
    #: TLS options, spelt and meant as in redis-py: ``ssl_cert_reqs`` is
    #: ``required`` (the default) or ``optional`` (both verify the server's
    #: certificate: a TLS server always presents one), or ``none``;
    #: ``ssl_ca_certs`` a PEM bundle of the CAs to trust instead of the
    #: system's; ``ssl_certfile``/``ssl_keyfile`` a client certificate;
    #: ``ssl_check_hostname`` whether the certificate must name the host.
    ssl_cert_reqs: str = "required"
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True

    @property
    def tls(self) -> bool:
        return self.scheme == "rediss"

    def redacted(self) -> str:
        """
        The URL as a user may see it: any password replaced by ``***``.
        """
        auth = ""
        if self.username or self.password:
            auth = (self.username or "") + (":***" if self.password else "") + "@"
        if self.scheme == "unix":
            return f"unix://{auth}{self.path}?db={self.db}"
        if self.scheme == "redis+sentinel":
            hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
            return f"redis+sentinel://{auth}{hosts}/{self.master}/{self.db}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{self.scheme}://{auth}{host}:{self.port}/{self.db}"

    __str__ = redacted

    def __repr__(self) -> str:
        return f"RedisURL({self.redacted()!r})"


class InvalidRedisURL(ValueError):
    """
    A Redis URL Pace cannot use. The message never contains the password.
    """


def parse_redis_url(url: str) -> RedisURL:
    """
    Parse a ``redis://``, ``rediss://``, ``unix://`` or ``redis+sentinel://``
    URL; see `resolve_redis_url`.
    """
    try:
        parts = urlsplit(url)
        # A sentinel URL lists several host:port pairs; they are split below.
        port = None if parts.scheme.lower() == "redis+sentinel" else parts.port
    except ValueError as e:
        raise InvalidRedisURL(f"not a Redis URL ({e}): {_redact_raw(url)}") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise InvalidRedisURL(
            f"unsupported Redis URL scheme {scheme!r} in {_redact_raw(url)}: "
            "use redis://, rediss://, unix:// or redis+sentinel://"
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if password is None and "password" in query:
        password = query["password"]
    if password:
        _passwords.add(password)
    tls = _tls_options(query, url)
    db = _parse_db(query.get("db"), url)

    if scheme == "unix":
        if not parts.path:
            raise InvalidRedisURL(f"a unix:// URL needs a socket path: {_redact_raw(url)}")
        return RedisURL("unix", path=parts.path, db=db, username=username, password=password)

    if scheme == "redis+sentinel":
        netloc = parts.netloc.rpartition("@")[2]
        sentinels = tuple(_host_port(hp, 26379, url) for hp in netloc.split(",") if hp)
        segments = [s for s in parts.path.split("/") if s]
        if not sentinels or not segments:
            raise InvalidRedisURL(
                "a redis+sentinel:// URL reads host:port[,host:port...]/<master name>[/db]: "
                + _redact_raw(url)
            )
        if len(segments) > 1:
            db = _parse_db(segments[1], url)
        return RedisURL(
            scheme,
            db=db,
            username=username,
            password=password,
            sentinels=sentinels,
            master=segments[0],
        )

    path = parts.path.strip("/")
    if path:
        db = _parse_db(path, url)
    return RedisURL(
        scheme,
        host=parts.hostname or "127.0.0.1",
        port=port or 6379,
        db=db,
        username=username,
        password=password,
        **tls,
    )


_CERT_REQS = ("none", "optional", "required")
_TRUE, _FALSE = ("true", "yes", "1", "on", "y"), ("false", "no", "0", "off", "n")


def _tls_options(query: dict[str, str], url: str) -> dict:
    reqs = query.get("ssl_cert_reqs", "required").lower()
    if reqs not in _CERT_REQS:
        raise InvalidRedisURL(
            f"ssl_cert_reqs must be none, optional or required, not {reqs!r}: {redact(url)}"
        )
    check = query.get("ssl_check_hostname", "true").lower()
    if check not in _TRUE + _FALSE:
        raise InvalidRedisURL(
            f"ssl_check_hostname must be true or false, not {check!r}: {redact(url)}"
        )
    files = {}
    for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        path = query.get(name)
        if path is not None and not os.path.isfile(path):
            raise InvalidRedisURL(f"{name}={path}: no such file (in {redact(url)})")
        files[name] = path
    if files["ssl_keyfile"] and not files["ssl_certfile"]:
        raise InvalidRedisURL(f"ssl_keyfile needs ssl_certfile: {redact(url)}")
    return {
        "verify": reqs != "none",
        "ssl_cert_reqs": reqs,
        "ssl_check_hostname": reqs != "none" and check in _TRUE,
        **files,
    }


def _parse_db(text: str | None, url: str) -> int:
    if text is None or text == "":
        return 0
    try:
        db = int(text)
    except ValueError:
        db = -1
    if db < 0:
        raise InvalidRedisURL(
            f"the database must be a number >= 0, not {text!r}: {_redact_raw(url)}"
        )
    return db


def _host_port(text: str, default_port: int, url: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise InvalidRedisURL(f"bad port {port!r} in {_redact_raw(url)}") from None


def _redact_raw(url: str) -> str:
    return redact(url)


# A URL anywhere in a text: scheme, then everything up to white space or a
# quote. Its user information ends at the last "@", as urlsplit reads it.
_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s'\"<>]*)")
_PASSWORD_PARAM = re.compile(r"(?i)([?&;]password=)[^&#\s'\"<>]*")
_MASK = "***"


def _redact_match(match: re.Match) -> str:
    scheme, rest = match.groups()
    userinfo, at, after = rest.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        # With no colon the whole user part may be a password (redis-rb and
        # others read "redis://secret@host" so): hide it all.
        rest = (f"{user}:{_MASK}" if colon else _MASK) + "@" + after
    return scheme + _PASSWORD_PARAM.sub(r"\1" + _MASK, rest)


def redact(text: str) -> str:
    """
    ``text`` with the password of every URL in it replaced by ``***``: in
    the user information (``redis://:PW@h``, ``redis://user:PW@h``, sentinel
    host lists, URLs too broken to parse) and in a ``password=`` query
    parameter. Meant for any message that may quote a URL.
    """
    if "://" not in text:
        return text
    return _URL.sub(_redact_match, text)


def known_passwords() -> frozenset[str]:
    """
    The passwords of every Redis URL parsed so far, and of ``$REDIS_URL``
    and ``pace.redis_url``, for scrubbing reports.
    """
    for url in (os.environ.get("REDIS_URL"), getattr(_package(), "redis_url", None)):
        if isinstance(url, str) and url not in _sources:
            _sources.add(url)
            try:
                parse_redis_url(url)
            except InvalidRedisURL:
                pass
        elif isinstance(url, RedisURL) and url.password:
            _passwords.add(url.password)
    return frozenset(_passwords)


_sources: set[str] = set()


def scrub(text: str) -> str:
    """
    `redact`, and every known Redis password (`known_passwords`) replaced by
    ``***`` wherever it appears, for messages that quote what others wrote
    (an exception from a handler). Passwords shorter than 4 characters are
    left to `redact`: replacing them everywhere would garble the text.
    """
    text = redact(text)
    for secret in known_passwords():
        if len(secret) >= 4 and secret in text:
            text = text.replace(secret, _MASK)
    return text


def resolve_redis_url(explicit: str | None = None) -> RedisURL:
    """
    The Redis server to use: ``explicit``, else ``pace.redis_url``, else
    ``$REDIS_URL``, else ``redis://127.0.0.1:6379/0``.

    Schemes: ``redis://[user:password@]host[:port][/db]``, ``rediss://`` (TLS;
    certificates are verified unless the URL says ``?ssl_cert_reqs=none``;
    ``?ssl_ca_certs=/path/ca.pem`` trusts a private CA, ``ssl_certfile`` and
    ``ssl_keyfile`` give a client certificate, ``ssl_check_hostname=false``
    verifies the chain but not the name, all as redis-py reads them),
    ``unix:///path/to/socket[?db=N]`` and
    ``redis+sentinel://host:port[,host:port...]/<master name>[/db]``.
    """
    url = (
        explicit
        or getattr(_package(), "redis_url", None)
        or os.environ.get("REDIS_URL")
        or DEFAULT_REDIS_URL
    )
    if isinstance(url, RedisURL):
        return url
    return parse_redis_url(url)


def check_number(name: str, value: Any, unit: str = "", *, allow_zero: bool = False) -> None:
    """
    ``ValueError`` naming ``name`` unless ``value`` is a number (not a bool)
    > 0, or >= 0 with ``allow_zero``; ``unit`` goes into the message
    (" of seconds").
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a number{unit} {bound}, not {value!r}")
