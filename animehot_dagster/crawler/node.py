"""The crawler node: takes tasks from the Redis task queue, crawls, pushes each result and
acks its task (SPEC §6), until SIGTERM.

Shutdown (SPEC §12, 2 minutes): stop taking tasks, let the current crawl finish while the
grace period allows, else cancel it and put its task back on the queue; then close the browser.
A task is acknowledged only after its result is on the result queue, so at every instant it is
either queued, held by this node, or answered: nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from pathlib import Path

import redis

from animehot_dagster.crawler.crawl import Crawler
from animehot_dagster.domain.messages import CrawlResponse, encode_response
from animehot_dagster.queue.reliable import Delivery, ResultQueue, TaskQueue

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 120.0
# Of the grace period, what closing the browser and the metrics server may need at the end.
CLOSE_RESERVE_SECONDS = 15.0
TAKE_BLOCK_SECONDS = 2.0
REDIS_RETRY_SECONDS = 5.0


class CrawlerNode:
    def __init__(
        self,
        crawler: Crawler,
        tasks: TaskQueue,
        results: ResultQueue,
        *,
        shutdown_grace_seconds: float = SHUTDOWN_GRACE_SECONDS,
        take_block_seconds: float = TAKE_BLOCK_SECONDS,
        results_log: Path | None = None,
    ) -> None:
        self.crawler = crawler
        self._results_log = results_log
        self._tasks = tasks
        self._results = results
        self._grace = shutdown_grace_seconds
        self._take_block = take_block_seconds
        self._stop = asyncio.Event()
        self._crawl_deadline = 0.0  # monotonic; set when the stop is requested
        self.running = False

    @property
    def ready(self) -> bool:
        """Taking tasks: running, not stopping, and the circuit lets requests through."""
        return self.running and not self._stop.is_set() and self.crawler.circuit.allows()

    def request_stop(self) -> None:
        if self._stop.is_set():
            return
        log.info("shutdown signal received", extra={"grace_seconds": self._grace})
        self._crawl_deadline = time.monotonic() + max(0.0, self._grace - min(CLOSE_RESERVE_SECONDS, self._grace / 4))
        self._stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        self.running = True
        log.info("crawler node started")
        try:
            while not self._stop.is_set():
                closed_in = self.crawler.circuit.seconds_until_closed()
                if closed_in > 0:  # tasks are better left to other nodes than failed here
                    await self._pause(closed_in)
                    continue
                try:
                    delivery = await asyncio.to_thread(self._tasks.take, self._take_block)
                except redis.RedisError as exc:
                    log.error("task queue unavailable", extra={"error": str(exc)})
                    await self._pause(REDIS_RETRY_SECONDS)
                    continue
                if delivery is None:
                    continue
                if self._stop.is_set():
                    await self._give_back(delivery)
                    break
                await self._handle(delivery)
        finally:
            self.running = False
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            await self.crawler.close()
            log.info("crawler node stopped")

    async def _handle(self, delivery: Delivery) -> None:
        if delivery.message is None:
            await asyncio.to_thread(self._tasks.dead_letter, delivery, delivery.error)
            return
        request = delivery.message
        crawl = asyncio.create_task(self.crawler.crawl(request))
        stopping = asyncio.create_task(self._stop.wait())
        await asyncio.wait({crawl, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not crawl.done():
            await asyncio.wait({crawl}, timeout=max(0.0, self._crawl_deadline - time.monotonic()))
        if not crawl.done():
            crawl.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await crawl
            log.warning("crawl cut short by shutdown", extra={"task_id": request.task_id, "ip_id": request.ip_id})
            await self._give_back(delivery)
            return
        try:
            response = crawl.result()
        except Exception as exc:  # a crawler bug must still answer the task
            log.exception("crawl failed", extra={"task_id": request.task_id, "ip_id": request.ip_id})
            response = CrawlResponse(
                ip_id=request.ip_id, task_id=request.task_id, crawled_at=int(time.time()),
                error_message=f"unknown: crawler error: {exc}", retry_count=request.retry_count,
            )
        try:
            self._log_result("pushing", response)
            await asyncio.to_thread(self._results.push, response)
            self._log_result("pushed", response)
            if not await asyncio.to_thread(self._tasks.ack, delivery):
                log.warning("task was returned to the queue while it was crawled: it will be answered twice",
                            extra={"task_id": request.task_id, "ip_id": request.ip_id})
        except redis.RedisError as exc:
            # Unacknowledged, the task stays held: the janitor returns it to the queue. A result
            # pushed but not acked is crawled again and answered twice; the processor keeps one.
            log.error("result not delivered, task left for the janitor",
                      extra={"task_id": request.task_id, "ip_id": request.ip_id, "error": str(exc)})

    def _log_result(self, event: str, response: CrawlResponse) -> None:
        """With a results log, one JSON line per result before its push ("pushing", with the
        result as sent) and one after Redis took it ("pushed"): what this node delivered, for an
        audit against what was applied (bench/chaos.py). One O_APPEND write per line, so a node
        killed at any instant leaves whole lines only."""
        if self._results_log is None:
            return
        line = {"event": event, "at": round(time.time(), 3), "task_id": response.task_id, "ip_id": response.ip_id,
                "crawled_at": response.crawled_at, "error": response.error_message}
        if event == "pushing":
            line["result"] = encode_response(response)
        fd = os.open(self._results_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(line, ensure_ascii=False) + "\n").encode())
        finally:
            os.close(fd)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up for a stop request."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _give_back(self, delivery: Delivery) -> None:
        """Put a held task back on the queue now rather than after the janitor's timeout."""
        try:
            await asyncio.to_thread(self._tasks.release, delivery)
        except redis.RedisError as exc:
            log.error("task not returned, left for the janitor", extra={"task_id": delivery.task_id, "error": str(exc)})
