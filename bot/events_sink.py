"""Move conversation events from RabbitMQ into the SQL `events` table the desk tails.

Why: in the scale-out topology the Rasa servers publish to RabbitMQ (Pika
event broker) instead of writing the table themselves, so the broker is not a
database round trip inside every turn and other consumers can bind their own
queues to Rasa's fanout exchange.  The desk (bot/desk/feed.py) and analytics
still read the stock `events` table; this consumer keeps it filled (the
pattern Rasa X used).  Rows are written in batches, one transaction each, and
acknowledged only after the commit: delivery is at least once, so a sink killed
between commit and ack may write a batch twice when it restarts.

    python -m bot.events_sink --amqp amqp://guest:guest@127.0.0.1:5672/ --queue kefu_events \\
        --dialect postgresql --host 127.0.0.1 --port 5432 --username kefu --db kefu_events
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from typing import Any

import aio_pika

from bot.event_broker import BatchSQLEventBroker

log = logging.getLogger("kefu.events_sink")


async def run(amqp_url: str, queue_name: str, broker: BatchSQLEventBroker,
              batch: int = 200, linger_s: float = 0.2) -> None:
    connection = await aio_pika.connect_robust(amqp_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=batch * 2)
        queue = await channel.declare_queue(queue_name, durable=True)
        pending: list[aio_pika.abc.AbstractIncomingMessage] = []
        moved = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            pending.append(message)

        tag = await queue.consume(on_message)
        log.info("events sink consuming %s", queue_name)
        print(f"events sink: consuming {queue_name}", flush=True)
        while True:
            stopping = stop.is_set()
            if pending:
                taken, pending[:] = pending[:batch], pending[batch:]
                bodies: list[dict[str, Any]] = []
                for message in taken:
                    try:
                        bodies.append(json.loads(message.body))
                    except ValueError:
                        log.warning("events sink: dropping a message that is not JSON")
                broker.publish_many(bodies)
                await taken[-1].ack(multiple=True)
                moved += len(bodies)
                continue
            if stopping:
                break
            try:
                await asyncio.wait_for(stop.wait(), timeout=linger_s)
            except asyncio.TimeoutError:
                pass
        await queue.cancel(tag)
        log.info("events sink stopped after %d events", moved)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amqp", required=True, help="AMQP URL of RabbitMQ")
    parser.add_argument("--queue", required=True, help="queue the Rasa servers publish to")
    parser.add_argument("--dialect", default="postgresql")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--username")
    parser.add_argument("--db", required=True, help="database name (SQLite: file)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    broker = BatchSQLEventBroker(dialect=args.dialect, host=args.host, port=args.port,
                                username=args.username, db=args.db)
    asyncio.run(run(args.amqp, args.queue, broker))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
