"""Health, system status and the crawl schedule."""

from __future__ import annotations

from datetime import UTC, datetime

import redis
import sqlalchemy as sa
from fastapi import APIRouter
from starlette.responses import Response

from animehot_dagster.api import models as m
from animehot_dagster.api import system_models as sm
from animehot_dagster.api.envelope import ERRORS, JSON, WITH_REDIS, ApiError, data_response, dumps
from animehot_dagster.api.services import Svc
from animehot_dagster.api.views import LAST_WRITABLE, duration_text, t
from animehot_dagster.domain.timebuckets import rfc3339_jst
from animehot_dagster.queue import keys as queue_keys
from animehot_dagster.storage import api_reads

router = APIRouter(tags=["system"])

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _schedule_time(at: float) -> datetime:
    """A ZSET score as a time; one past what a datetime holds (a far-future crawl time written
    before the wire bounds) as the last time the API writes, one before 1970 as 1970."""
    try:
        return datetime.fromtimestamp(at, UTC)
    except (OverflowError, OSError, ValueError):
        return LAST_WRITABLE if at > 0 else EPOCH


@router.get("/health", response_model=sm.Health)
async def health(svc: Svc):
    return Response(dumps({"status": "ok", "time": rfc3339_jst(svc.clock())}), media_type=JSON)


def _redis_figures(client: redis.Redis, stamp: float) -> dict:
    with client.pipeline(transaction=False) as pipe:
        pipe.get(queue_keys.FAILED_RUNS)
        pipe.zcard(queue_keys.SCHEDULE)
        pipe.zcount(queue_keys.SCHEDULE, "-inf", f"({stamp}")
        pipe.llen(queue_keys.TASKS)
        pipe.llen(queue_keys.RESULTS)
        pipe.llen(queue_keys.TASKS_DEADLETTER)
        pipe.llen(queue_keys.RESULTS_DEADLETTER)
        runs, total, overdue, tasks, results, dead_tasks, dead_results = pipe.execute()
    return {"failed_runs": int(runs or 0), "total_ips": int(total), "overdue_ips": int(overdue),
            "queues": {"tasks": tasks, "results": results, "dead_letter": dead_tasks + dead_results}}


@router.get("/api/v1/system/status", response_model=m.Envelope[sm.SystemStatus], responses=ERRORS)
def system_status(svc: Svc):
    """The database and Redis as the API sees them; the crawl pipeline's outcomes (crawls
    applied, crawls failed and failed runs); the schedule; alerts and items on sale."""
    now = svc.clock()
    database = {"connected": True, "ip_count": 0}
    figures = {"processed": 0, "errors": 0, "unacked_alerts": 0, "active_items": 0}
    try:
        figures = api_reads.system_figures(svc.engine)
        database["ip_count"] = figures["ip_count"]
    except sa.exc.SQLAlchemyError as exc:
        database.update(connected=False, error=exc.__class__.__name__)
    redis_state, seen = "ok", None
    try:
        seen = _redis_figures(svc.require_redis(), now.timestamp())
    except (redis.RedisError, ApiError) as exc:
        redis_state = f"error: {getattr(exc, 'message', exc.__class__.__name__)}"
    processed = figures["processed"]
    failed = figures["errors"] + (seen["failed_runs"] if seen else 0)
    done = processed + failed
    return data_response({
        "status": "ok" if database["connected"] and seen is not None else "degraded",
        "timestamp": rfc3339_jst(now),
        "database": database,
        "pipeline": {"running": database["connected"] and seen is not None, "processed": processed,
                     "failed": failed, "success_rate": round(processed / done, 4) if done else 1.0},
        "scheduler": {"running": bool(seen and seen["total_ips"]), "total_ips": seen["total_ips"] if seen else 0,
                      "overdue_ips": seen["overdue_ips"] if seen else 0},
        "stats": {"unacked_alerts": figures["unacked_alerts"], "active_items": figures["active_items"]},
        "redis": redis_state,
        "queues": seen["queues"] if seen else {"tasks": None, "results": None, "dead_letter": None},
    })


@router.get("/api/v1/system/scheduler", response_model=m.Envelope[sm.Scheduler], responses=WITH_REDIS)
def system_scheduler(svc: Svc):
    """Every IP of the crawl schedule, soonest first."""
    svc.require_redis()
    now = svc.clock()
    try:
        entries = svc.schedule.entries()
    except redis.RedisError as exc:
        raise ApiError(503, f"Redis unavailable ({exc.__class__.__name__})") from None
    names = api_reads.names_of(svc.engine, [ip_id for ip_id, _ in entries])
    stamp = now.timestamp()
    schedules = [
        {"ip_id": ip_id, "ip_name": names.get(ip_id, ""),
         "next_schedule": t(_schedule_time(at)),
         "time_until": duration_text(int(at - stamp)), "is_overdue": at < stamp, "seconds_until": int(at - stamp)}
        for ip_id, at in entries
    ]
    return data_response({"running": bool(schedules), "total_ips": len(schedules),
                          "overdue_ips": sum(1 for s in schedules if s["is_overdue"]), "schedules": schedules,
                          "timestamp": rfc3339_jst(now)})
