"""The broker as the portal's processes use it: a bounded publish for request paths, and the Redis
transport with the fix that keeps a worker alive when Redis drops a connection.

`publish()` is what a web request calls to queue a task. Celery's own `apply_async(retry=False)`
still goes through kombu's connection establishment, which retries for several seconds when the
broker is down (6.7 s measured with Redis stopped): one intake POST then holds a web worker that
long. `publish()` uses connections of its own (a small pool per process) with connect and socket
timeouts of BROKER_PUBLISH_TIMEOUT seconds and no retries, and raises at once when the broker does
not answer; the caller decides what the request answers (the intake: 503 with Retry-After, the
delivery stays stored and the sweep queues it). `send()` is the same for a task known only by its
name. `publish_each()` queues rows that a sweep also finds (pages, webhook deliveries) and leaves
them to it when the broker does not answer.

`waiting()` counts a queue's messages the same way on Redis, RabbitMQ and kombu's filesystem
transport, for the queue actions and the queue-depth metric.
"""

import logging
import os
from contextlib import contextmanager
from queue import Empty

from django.conf import settings
from kombu.transport import redis as kombu_redis

logger = logging.getLogger(__name__)

_pools: dict = {}


def _bounded_options() -> dict:
    timeout = settings.BROKER_PUBLISH_TIMEOUT
    return {
        "max_retries": 0,  # kombu's ensure_connection: one attempt
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "retry_on_timeout": False,
    }


def _pool(app):
    """One pool per process and broker URL (a forked web worker must not share its parent's sockets)."""
    url = app.conf.broker_write_url or app.conf.broker_url
    key = (os.getpid(), url)
    pool = _pools.get(key)
    if pool is None:
        options = {**(app.conf.broker_transport_options or {}), **_bounded_options()}
        connection = app.connection_for_write(
            url, transport_options=options, connect_timeout=settings.BROKER_PUBLISH_TIMEOUT
        )
        pool = _pools[key] = connection.Pool(limit=settings.BROKER_PUBLISH_POOL_SIZE)
    return pool


@contextmanager
def _connection(app):
    with _pool(app).acquire(block=True, timeout=settings.BROKER_PUBLISH_TIMEOUT) as connection:
        try:
            yield connection
        except Exception:
            # The connection may be half-open: close it, so the next publish connects afresh.
            connection.collect()
            raise


def publish(task, args=(), kwargs=None, **options):
    """Queue `task` now, or raise within about BROKER_PUBLISH_TIMEOUT seconds if the broker is down."""
    with _connection(task.app) as connection:
        return task.apply_async(args, kwargs, connection=connection, retry=False, **options)


def send(app, name: str, args=(), kwargs=None, **options):
    """`publish()` for a task known only by its name (a failed task requeued as it was recorded,
    whose code this process may not even import)."""
    with _connection(app) as connection:
        return app.send_task(name, args, kwargs, connection=connection, retry=False, **options)


def publish_each(task, ids: list[int], *, what: str) -> list[int]:
    """Queue `task(pk)` for each of `ids` with `publish()`, for rows that a beat sweep also picks up
    (a page, a webhook delivery): returns the ids left unqueued. The first failure stops it, since
    every further publish would wait out the timeout again, and one warning names `what` and the
    ids the sweep will queue."""
    for n, pk in enumerate(ids):
        try:
            publish(task, (pk,))
        except Exception as exc:  # noqa: BLE001 - kombu/redis/amqp raise many kinds; all mean "not queued"
            left = ids[n:]
            logger.warning(
                "%s %s not queued (%s: %s); the sweep queues it",
                what,
                ", ".join(map(str, left)),
                type(exc).__name__,
                exc,
            )
            return left
    return []


def ping(app) -> None:
    """Raise unless the broker answers within the bounded timeouts (the readiness probe).

    A fresh connection, not one from the pool: opening it is the round trip that proves the broker
    answers (kombu's Redis channel pings on creation; AMQP opens a channel)."""
    url = app.conf.broker_write_url or app.conf.broker_url
    options = {**(app.conf.broker_transport_options or {}), **_bounded_options()}
    timeout = settings.BROKER_PUBLISH_TIMEOUT
    with app.connection_for_write(url, transport_options=options, connect_timeout=timeout) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        _ = connection.default_channel


def never_declared(exc: Exception) -> bool:
    """The broker does not know the queue: RabbitMQ's 404 NOT_FOUND (which also closes the channel),
    kombu's virtual transports' "no queue". Such a queue holds no messages."""
    return "NOT_FOUND" in str(exc) or "no queue" in str(exc).lower()


def waiting(conn, queue: str) -> int:
    """Messages ready on `queue` (a passive declare; on RabbitMQ those a worker holds unacked are not
    counted). A queue the broker never saw counts as empty; the connection is then closed, since
    RabbitMQ closed its channel, and the next call opens a new one."""
    try:
        return conn.default_channel.queue_declare(queue, passive=True).message_count
    except Exception as exc:
        if never_declared(exc):
            conn.close()
            return 0
        raise


class RedisChannel(kombu_redis.Channel):
    """kombu 5.7.0's Redis channel, closing cleanly when Redis is gone.

    When Redis drops while a worker waits in BRPOP (a restart, with a task in flight), Celery's
    consumer collects the connection: `Channel.close()` first reads the pending BRPOP reply, which
    raises ConnectionError, so the close stops before the channel is marked closed; kombu then
    drops the transport's client. Celery's second close of the same channel tries to restore the
    unacknowledged messages through a client it can no longer build and dies with
    `AttributeError: 'NoneType' object has no attribute 'hostname'`, an "Unrecoverable error"
    that stops the worker. Here a connection error on that read is the outage itself: it is
    logged and the close goes on, so the channel closes while it still can (its unacked messages
    stay in Redis, where another consumer restores them after the visibility timeout) and the
    consumer reconnects. Reproduced and tested in tests/opsportal/test_broker_outage.py.
    """

    def close(self):
        if self._in_poll and not self.closed:
            try:
                self._brpop_read()
            except Empty:
                pass
            except self.connection_errors as exc:
                logger.warning("broker connection lost while closing the channel: %r", exc)
        super().close()


class RedisTransport(kombu_redis.Transport):
    """The Redis transport with RedisChannel (settings.CELERY_BROKER_TRANSPORT names it)."""

    Channel = RedisChannel
