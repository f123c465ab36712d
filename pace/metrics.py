"""
Metrics: a Prometheus endpoint (prometheus_client) for a worker, with jobs
processed and failed by queue and class, jobs in flight, job durations,
fetch batch sizes, queue depths and the paused state. Only a worker that is
instrumented pays for it: two counter updates and a clock read per job.
"""

from __future__ import annotations

from typing import Any

from twisted.application.internet import TCPServer
from twisted.application.service import IService, MultiService, Service
from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site

from pace.config import short_queue_name

log = Logger()

#: How often queue depths are read from Redis.
DEPTH_SECONDS = 5.0


class Metrics:
    def __init__(self, worker: Any, registry: Any = None):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry if registry is not None else CollectorRegistry()
        self.worker = worker
        names = [short_queue_name(q) for q in worker.queues]
        self._queues = names
        r = self.registry
        self.processed = Counter(
            "pace_jobs_processed", "Jobs that succeeded.", ["queue", "job_class"], registry=r
        )
        self.failed = Counter(
            "pace_jobs_failed", "Jobs that failed.", ["queue", "job_class"], registry=r
        )
        self.duration = Histogram(
            "pace_job_duration_seconds",
            "From handler call to settled.",
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120),
        )
        self.batch = Histogram(
            "pace_fetch_batch_size",
            "Jobs per fetch.",
            registry=r,
            buckets=(0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
        )
        self.depth = Gauge("pace_queue_depth", "Jobs waiting.", ["queue"], registry=r)
        Gauge("pace_jobs_in_flight", "Jobs holding a slot.", registry=r).set_function(
            lambda: worker.in_flight
        )
        Gauge("pace_paused", "1 while paused.", registry=r).set_function(
            lambda: 1 if worker.paused else 0
        )
        # Label lookups are cached: one dict hit per job instead of two.
        self._counters: dict[tuple[bool, int, str | None], Any] = {}
        _fleet_metrics(worker, r)

    def settled(self, queue_index: int, job_class: str | None, ok: bool, seconds: float) -> None:
        key = (ok, queue_index, job_class)
        counter = self._counters.get(key)
        if counter is None:
            family = self.processed if ok else self.failed
            counter = self._counters[key] = family.labels(
                self._queues[queue_index], job_class or "(malformed)"
            )
        counter.inc()
        self.duration.observe(seconds)

    def fetched(self, n: int) -> None:
        self.batch.observe(n)

    @defer.inlineCallbacks
    def read_depths(self) -> Any:
        lengths = yield self.worker.queue_lengths()
        for name, length in zip(self._queues, lengths or [], strict=False):
            self.depth.labels(name).set(length)


def instrument(worker: Any, registry: Any = None) -> Metrics:
    """
    Collect metrics for ``worker`` (in ``registry``, default a new one).
    """
    metrics = Metrics(worker, registry)
    worker.observe(metrics)
    return metrics


class _Depths(Service):
    def __init__(self, metrics: Metrics):
        self._loop = LoopingCall(self._read, metrics)

    def _read(self, metrics: Metrics) -> defer.Deferred:
        return metrics.read_depths().addErrback(
            lambda f: log.warn("pace: queue depths not read: {error}", error=f.getErrorMessage())
        )

    def startService(self) -> None:
        super().startService()
        self._loop.start(DEPTH_SECONDS, now=False)

    def stopService(self) -> None:
        super().stopService()
        if self._loop.running:
            self._loop.stop()


def service(worker: Any, port: int, interface: str = "") -> IService:
    """
    A service serving ``worker``'s metrics at ``http://<interface>:<port>/metrics``.
    """
    from prometheus_client.twisted import MetricsResource

    metrics = instrument(worker)
    root = Resource()
    root.putChild(b"metrics", MetricsResource(registry=metrics.registry))
    root.putChild(b"healthz", Healthz(worker))
    top = MultiService()
    site = Site(root)
    site.log = lambda request: None  # type: ignore[method-assign]  # no access log per scrape
    server = TCPServer(port, site, interface=interface)
    server.setServiceParent(top)
    _Depths(metrics).setServiceParent(top)
    top.metrics = metrics  # type: ignore[attr-defined]
    top.server = server  # type: ignore[attr-defined]
    return top


# -- fleet control (issue 13): pauses, the circuit, /healthz -------------------


def _fleet_metrics(worker: Any, r: Any) -> None:
    from prometheus_client import Counter, Gauge

    fleet = getattr(worker, "_fleet", None)
    if fleet is None:
        return
    paused = Gauge(
        "pace_queue_paused",
        "1 while the queue is paused for the fleet (pace pause, a shared circuit).",
        ["queue"],
        registry=r,
    )
    for key in worker.queues:
        paused.labels(short_queue_name(key)).set_function(_queue_paused(fleet, key))
    Gauge(
        "pace_pause_all_workers", "1 while Resque's pause-all-workers is set.", registry=r
    ).set_function(lambda: 1 if fleet.watch is not None and fleet.watch.pause_all else 0)
    circuit = fleet.circuit
    if circuit is None:
        return
    Gauge(
        "pace_circuit_open", "1 while the circuit is open or half-open.", registry=r
    ).set_function(lambda: 0 if circuit.state == "closed" else 1)
    changes = Counter(
        "pace_circuit_changes", "Circuit state changes, by new state.", ["state"], registry=r
    )
    circuit.listen(lambda c, old, new: changes.labels(new).inc())


def healthy(worker: Any) -> bool:
    """
    True while ``worker`` runs and its fetch loop is alive (or it is paused
    on purpose: by a signal, a fleet pause, an open circuit).
    """
    if worker.state != "running":
        return False
    if worker.fetching or worker.paused:
        return True
    fleet = getattr(worker, "_fleet", None)
    return fleet is not None and fleet.blocked


class Healthz(Resource):
    """
    ``/healthz``: 200 while the worker is healthy (see `healthy`), else 503.
    """

    isLeaf = True

    def __init__(self, worker: Any):
        super().__init__()
        self.worker = worker

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        if healthy(self.worker):
            return b"ok\n"
        request.setResponseCode(503)
        return f"not running: {self.worker.state}\n".encode()


def _queue_paused(fleet: Any, key: str) -> Any:
    def paused() -> int:
        return 1 if fleet.watch is not None and key in fleet.watch.paused_queues else 0

    return paused
