"""Reliable-queue throughput: enqueue + take + ack round trips per second with N consumers.

Beside it, measured in the same run on the same Redis with the same client, the floor: plain
LPUSH / RPOP of the same payloads, which is what a queue with no dedup, no processing list and
no ack would cost. The ratio says what reliability costs.

One producer (this process) enqueues every task, one per IP so the dedup never refuses; N
consumer processes take and ack until the queue is drained. Both sides poll without blocking
and back off 1 ms on an empty queue, so the two measurements wait in the same way. The time is
from the first enqueue to the last ack.

    .venv/bin/python -m bench.reliable_queue [--tasks 20000] [--consumers 1,4] [--redis-url …] [--json]

It refuses to run on a Redis database that already holds queue keys, and deletes them after.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time

import redis

from animehot_dagster.domain.cadence import CadencePolicy
from animehot_dagster.domain.messages import CrawlRequest, encode_request
from animehot_dagster.queue import keys
from animehot_dagster.queue.reliable import TaskQueue

EMPTY_BACKOFF_SECONDS = 0.001
QUEUE_KEYS = [key for key, _ in keys.MEASURED_KEYS]


def make_requests(count: int) -> list[CrawlRequest]:
    now = int(time.time())
    return [CrawlRequest.new_task(ip_id, f"キーワード {ip_id}", CadencePolicy(), now) for ip_id in range(1, count + 1)]


def reliable_consumer(url: str, start, producer_done, last_ack) -> None:
    tasks = TaskQueue(redis.Redis.from_url(url))
    start.wait()
    while True:
        delivery = tasks.take()
        if delivery is None:
            if producer_done.is_set() and tasks.depth() == 0:
                return
            time.sleep(EMPTY_BACKOFF_SECONDS)
            continue
        tasks.ack(delivery)
        last_ack.value = max(last_ack.value, time.time())


def floor_consumer(url: str, start, producer_done, last_ack) -> None:
    client = redis.Redis.from_url(url)
    start.wait()
    while True:
        if client.rpop(keys.TASKS) is None:
            if producer_done.is_set() and client.llen(keys.TASKS) == 0:
                return
            time.sleep(EMPTY_BACKOFF_SECONDS)
            continue
        last_ack.value = max(last_ack.value, time.time())


def measure(url: str, consumers: int, requests: list[CrawlRequest], reliable: bool) -> float:
    """Round trips per second."""
    client = redis.Redis.from_url(url)
    client.delete(*QUEUE_KEYS)
    context = multiprocessing.get_context("fork")
    start, producer_done = context.Event(), context.Event()
    last_acks = [context.Value("d", 0.0, lock=False) for _ in range(consumers)]
    target = reliable_consumer if reliable else floor_consumer
    workers = [context.Process(target=target, args=(url, start, producer_done, last_ack)) for last_ack in last_acks]
    for worker in workers:
        worker.start()
    tasks = TaskQueue(client)
    payloads = [encode_request(r) for r in requests]
    began = time.time()
    start.set()
    if reliable:
        for request in requests:
            tasks.enqueue(request)
    else:
        for payload in payloads:
            client.lpush(keys.TASKS, payload)
    producer_done.set()
    for worker in workers:
        worker.join()
    elapsed = max(last_ack.value for last_ack in last_acks) - began
    leftover = client.llen(keys.TASKS) + client.llen(keys.TASKS_PROCESSING) + client.scard(keys.TASKS_PENDING)
    if leftover:
        raise RuntimeError(f"{leftover} messages or marks left after the run: the consumers did not finish")
    client.delete(*QUEUE_KEYS)
    return len(requests) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reliable_queue", description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--consumers", default="1,4", help="comma-separated consumer counts")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis_url)
    if client.exists(*QUEUE_KEYS):
        sys.exit(f"{args.redis_url} holds queue keys already; give a --redis-url of a scratch database")
    requests = make_requests(args.tasks)
    runs = []
    for consumers in (int(n) for n in args.consumers.split(",")):
        floor = measure(args.redis_url, consumers, requests, reliable=False)
        queue = measure(args.redis_url, consumers, requests, reliable=True)
        runs.append({"consumers": consumers, "reliable_per_second": round(queue), "floor_per_second": round(floor),
                     "ratio": round(queue / floor, 3)})
    if args.json:
        print(json.dumps({"tasks": args.tasks, "redis_url": args.redis_url, "runs": runs}))
        return
    print(f"enqueue + take + ack round trips per second, {args.tasks} tasks, {args.redis_url}")
    print(f"{'consumers':>9}  {'reliable/s':>10}  {'floor/s':>8}  {'ratio':>5}")
    for run in runs:
        print(f"{run['consumers']:>9}  {run['reliable_per_second']:>10}  {run['floor_per_second']:>8}  {run['ratio']:>5}")


if __name__ == "__main__":
    main()
