"""What differs between the brokers the portal runs on (Redis, RabbitMQ, kombu's filesystem
transport), in one place for the queue actions and the queue-depth metric."""


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
