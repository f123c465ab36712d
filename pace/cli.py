"""
The ``pace`` command for operators: queue and worker stats, enqueueing, and
Resque's failed list (list, show, retry, remove, clear), on any Redis that
Resque, pyres or Pace use. Synchronous (redis-py), with rich's tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import pace
from pace import keys
from pace.config import InvalidRedisURL, expand_queue_name, resolve_redis_url, short_queue_name
from pace.payload import encode


class CommandError(Exception):
    """
    An operator's mistake or a missing thing: message printed, exit 1.
    """


def _client(args: argparse.Namespace) -> Any:
    import redis

    url = resolve_redis_url(args.redis_url)
    if url.scheme == "unix":
        return redis.Redis(
            unix_socket_path=url.path,
            db=url.db,
            username=url.username,
            password=url.password,
            decode_responses=True,
        )
    if url.scheme == "redis+sentinel":
        from redis.sentinel import Sentinel

        return Sentinel(list(url.sentinels)).master_for(
            url.master,
            db=url.db,
            username=url.username,
            password=url.password,
            decode_responses=True,
        )
    return redis.Redis(
        host=url.host,
        port=url.port,
        db=url.db,
        username=url.username,
        password=url.password,
        ssl=url.tls,
        ssl_cert_reqs="required" if url.verify else "none",
        decode_responses=True,
    )


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def cmd_stats(r: Any, args: argparse.Namespace, out: Any) -> int:
    from rich.table import Table

    queues = sorted(r.smembers(keys.queues_set()))
    table = Table(title="Queues")
    table.add_column("queue")
    table.add_column("jobs", justify="right")
    for name in queues:
        table.add_row(name, f"{r.llen(expand_queue_name(name)):,}")
    out.print(table)

    workers = sorted(r.smembers(keys.resque_workers()))
    beats = r.hgetall(keys.resque_heartbeats())
    table = Table(title="Workers")
    for column in ("worker", "started", "heartbeat", "processed", "failed"):
        table.add_column(column)
    for worker in workers:
        table.add_row(
            worker,
            r.get(keys.worker_started(worker)) or "-",
            beats.get(worker, "-"),
            r.get(keys.stat(f"processed:{worker}")) or "0",
            r.get(keys.stat(f"failed:{worker}")) or "0",
        )
    out.print(table)
    processed = int(r.get(keys.stat("processed")) or 0)
    failed = int(r.get(keys.stat("failed")) or 0)
    out.print(
        f"processed [bold]{processed:,}[/bold]   failed [bold red]{failed:,}[/bold red]   "
        f"in the failed list [bold]{r.llen(keys.failed_list()):,}[/bold]"
    )
    return 0


def cmd_enqueue(r: Any, args: argparse.Namespace, out: Any) -> int:
    job_args = []
    for text in args.args:
        try:
            job_args.append(json.loads(text))
        except ValueError:
            job_args.append(text)  # a bare word is a string
    key = expand_queue_name(args.queue)
    r.sadd(keys.queues_set(), short_queue_name(key))
    length = r.rpush(key, encode(args.klass, job_args))
    out.print(f"enqueued {args.klass} {json.dumps(job_args)} on {args.queue} ({length:,} waiting)")
    return 0


def _record(r: Any, index: int) -> tuple[str, dict]:
    raw = r.lindex(keys.failed_list(), index)
    if raw is None:
        total = r.llen(keys.failed_list())
        if not total:
            raise CommandError("the failed list is empty")
        raise CommandError(f"no failed job number {index}: they are numbered 0 to {total - 1}")
    try:
        return raw, json.loads(raw)
    except ValueError:
        raise CommandError(f"failed job {index} is not a JSON record: {raw[:200]!r}") from None


def cmd_failed_list(r: Any, args: argparse.Namespace, out: Any) -> int:
    from rich.table import Table

    total = r.llen(keys.failed_list())
    table = Table(title=f"Failed jobs ({total:,})")
    for column in ("#", "failed at", "queue", "class", "exception", "error", "retried"):
        table.add_column(column, overflow="fold")
    raws = r.lrange(keys.failed_list(), args.start, args.start + args.count - 1)
    for i, raw in enumerate(raws, args.start):
        try:
            rec = json.loads(raw)
        except ValueError:
            table.add_row(str(i), "?", "?", "?", "?", raw[:80], "")
            continue
        payload = rec.get("payload")
        klass = payload.get("class") if isinstance(payload, dict) else "(malformed)"
        table.add_row(
            str(i),
            str(rec.get("failed_at", "")),
            str(rec.get("queue", "")),
            str(klass),
            str(rec.get("exception", "")),
            str(rec.get("error", ""))[:120],
            str(rec.get("retried_at") or ""),
        )
    out.print(table)
    return 0


def cmd_failed_show(r: Any, args: argparse.Namespace, out: Any) -> int:
    _, record = _record(r, args.index)
    out.print_json(json.dumps(record))
    return 0


def _retry(r: Any, index: int) -> str:
    # As Resque::Failure::Redis.requeue: mark the record, push the payload
    # back onto its queue.
    raw, record = _record(r, index)
    payload, queue = record.get("payload"), record.get("queue")
    if not isinstance(payload, dict) or not queue:
        raise CommandError(f"failed job {index} has no job to retry (payload {payload!r})")
    record["retried_at"] = time.strftime("%Y/%m/%d %H:%M:%S %Z")
    pipe = r.pipeline()
    pipe.lset(keys.failed_list(), index, json.dumps(record))
    pipe.sadd(keys.queues_set(), short_queue_name(expand_queue_name(queue)))
    pipe.rpush(expand_queue_name(queue), json.dumps(payload))
    pipe.execute()
    return queue


def cmd_failed_retry(r: Any, args: argparse.Namespace, out: Any) -> int:
    queue = _retry(r, args.index)
    out.print(f"failed job {args.index} enqueued again on {queue}")
    return 0


def cmd_failed_retry_all(r: Any, args: argparse.Namespace, out: Any) -> int:
    from rich.progress import track

    total = r.llen(keys.failed_list())
    retried = skipped = 0
    for i in track(range(total), description="retrying", console=out, disable=total < 100):
        try:
            _retry(r, i)
            retried += 1
        except CommandError:
            skipped += 1
    out.print(
        f"{retried:,} failed jobs enqueued again" + (f", {skipped:,} skipped" if skipped else "")
    )
    return 0


def cmd_failed_remove(r: Any, args: argparse.Namespace, out: Any) -> int:
    _record(r, args.index)
    # As Resque does: mark the entry, then remove the mark (indexes shift).
    mark = f"__pace_remove_{time.time_ns()}__"
    pipe = r.pipeline()
    pipe.lset(keys.failed_list(), args.index, mark)
    pipe.lrem(keys.failed_list(), 1, mark)
    pipe.execute()
    out.print(f"failed job {args.index} removed")
    return 0


def _confirm(args: argparse.Namespace, question: str) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise CommandError(f"{question}: refusing without a terminal to ask; add --yes")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def cmd_failed_clear(r: Any, args: argparse.Namespace, out: Any) -> int:
    total = r.llen(keys.failed_list())
    if not total:
        out.print("the failed list is already empty")
        return 0
    if not _confirm(args, f"Delete all {total:,} failed jobs"):
        out.print("nothing deleted")
        return 1
    r.delete(keys.failed_list())
    out.print(f"{total:,} failed jobs deleted")
    return 0


def cmd_queues_clear(r: Any, args: argparse.Namespace, out: Any) -> int:
    key = expand_queue_name(args.queue)
    total = r.llen(key)
    if not _confirm(args, f"Delete the {total:,} jobs waiting in {args.queue}"):
        out.print("nothing deleted")
        return 1
    r.delete(key)
    out.print(f"{total:,} jobs deleted from {args.queue}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pace", description="Look after Resque queues and failed jobs."
    )
    p.add_argument("--redis-url", help="default: $REDIS_URL, else redis://127.0.0.1:6379/0")
    p.add_argument("--namespace", help="key prefix (Redis::Namespace style)")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("stats", help="queues, workers and counters").set_defaults(fn=cmd_stats)

    e = sub.add_parser("enqueue", help="enqueue a job: ARGS are JSON (bare words are strings)")
    e.add_argument("queue")
    e.add_argument("klass", metavar="CLASS")
    e.add_argument("args", nargs="*", metavar="ARG")
    e.set_defaults(fn=cmd_enqueue)

    f = sub.add_parser("failed", help="Resque's failed list").add_subparsers(
        dest="action", required=True
    )
    fl = f.add_parser("list", help="list failed jobs")
    fl.add_argument("--start", type=int, default=0)
    fl.add_argument("--count", type=int, default=50)
    fl.set_defaults(fn=cmd_failed_list)
    for name, fn, text in (
        ("show", cmd_failed_show, "show one failed job in full"),
        ("retry", cmd_failed_retry, "enqueue a failed job again (marked retried)"),
        ("remove", cmd_failed_remove, "remove one failed job"),
    ):
        a = f.add_parser(name, help=text)
        a.add_argument("index", type=int, metavar="N")
        a.set_defaults(fn=fn)
    f.add_parser("retry-all", help="enqueue every failed job again").set_defaults(
        fn=cmd_failed_retry_all
    )
    fc = f.add_parser("clear", help="delete every failed job")
    fc.add_argument("--yes", action="store_true", help="do not ask")
    fc.set_defaults(fn=cmd_failed_clear)

    q = sub.add_parser("queues", help="queues").add_subparsers(dest="action", required=True)
    qc = q.add_parser("clear", help="delete every job waiting in a queue")
    qc.add_argument("queue")
    qc.add_argument("--yes", action="store_true", help="do not ask")
    qc.set_defaults(fn=cmd_queues_clear)

    # Delayed jobs (issue 14) live in their own module.
    from pace.scheduled_cli import add_commands

    add_commands(sub)
    return p


def main(argv: list[str] | None = None, out: Any = None) -> int:
    args = parser().parse_args(argv)
    out = out or _console()
    if args.namespace:
        pace.namespace = args.namespace
    try:
        r = _client(args)
        return args.fn(r, args, out)
    except (CommandError, InvalidRedisURL) as e:
        out.print(f"[red]error:[/red] {e}")
        return 1
    except Exception as e:
        import redis

        if not isinstance(e, redis.RedisError):
            raise
        where = resolve_redis_url(args.redis_url).redacted()
        if isinstance(e, redis.ConnectionError):
            out.print(
                f"[red]error:[/red] cannot reach Redis at {where}: {e}. "
                "Check --redis-url or $REDIS_URL."
            )
        else:
            out.print(
                f"[red]error:[/red] Redis at {where} refused: {e}. Is --namespace right, "
                "and is this a Resque database?"
            )
        return 1


if __name__ == "__main__":
    sys.exit(main())
