"""
The ``pace`` command's Redis: a synchronous redis-py client for the URL
Pace resolves (``--redis-url``, ``pace.redis_url``, ``$REDIS_URL``), and
the one line that explains each Redis error to an operator.
"""

from __future__ import annotations

from typing import Any

from pace.cli.output import CommandError
from pace.config import InvalidRedisURL, resolve_redis_url

#: redis-py and rich come with the ``cli`` extra; the worker does not need them.
EXTRA_HINT = "pip install 'txpace[cli]'"

#: Seconds any one Redis reply may take: the command never hangs on a frozen server.
TIMEOUT = 10.0


def require_redis() -> Any:
    try:
        import redis
    except ImportError:
        raise CommandError(f"the pace command needs redis-py: {EXTRA_HINT}") from None
    return redis


def client(explicit_url: str | None, decode: bool) -> Any:
    redis = require_redis()
    try:
        url = resolve_redis_url(explicit_url)
    except InvalidRedisURL as e:
        raise CommandError(str(e)) from None
    common: dict[str, Any] = {
        "db": url.db,
        "username": url.username,
        "password": url.password,
        "decode_responses": decode,
        "socket_timeout": TIMEOUT,
        "socket_connect_timeout": TIMEOUT,
    }
    if url.scheme == "unix":
        return redis.Redis(unix_socket_path=url.path, **common)
    if url.scheme == "redis+sentinel":
        from redis.sentinel import Sentinel

        sentinel = Sentinel(list(url.sentinels), socket_timeout=TIMEOUT)
        return sentinel.master_for(url.master, **common)
    return redis.Redis(
        host=url.host,
        port=url.port,
        ssl=url.tls,
        ssl_cert_reqs="required" if url.verify else "none",
        **common,
    )


def _where(explicit_url: str | None) -> str:
    try:
        return resolve_redis_url(explicit_url).redacted()
    except InvalidRedisURL:
        return "(bad URL)"


def explain(error: Exception, explicit_url: str | None) -> str | None:
    """
    One line for a Redis error, naming the server (never its password);
    None for anything that is not a Redis error.
    """
    try:
        import redis
    except ImportError:
        return None
    if not isinstance(error, redis.RedisError):
        return None
    where = _where(explicit_url)
    text = str(error).rstrip(".")
    if "NOAUTH" in text or "HELLO must be called" in text or "Authentication required" in text:
        return (
            f"the server at {where} wants a password: put it in --redis-url or $REDIS_URL "
            "(redis://:PASSWORD@host:port/db)"
        )
    if "WRONGPASS" in text or "invalid username-password" in text:
        return f"the server at {where} refused the user name or password in the Redis URL"
    if isinstance(error, redis.TimeoutError):
        return f"Redis at {where} did not answer within {TIMEOUT:g}s: is it overloaded or stopped?"
    if isinstance(error, redis.ConnectionError):
        return f"cannot reach Redis at {where}: {text}. Check --redis-url or $REDIS_URL."
    return f"Redis at {where} refused: {text}. Is --namespace right, and is this a Resque database?"
