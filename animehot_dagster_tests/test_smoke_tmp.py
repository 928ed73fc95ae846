from datetime import timedelta
from animehot_dagster.storage.ingest import IngestConfig, apply
from animehot_dagster_tests.factories import T0, make_ips, on_sale, response, sold
import sqlalchemy as sa

def test_smoke(engine):
    (ip,) = make_ips(engine, "ちいかわ")
    cfg = IngestConfig()
    r1 = apply(engine, response(ip, T0, [on_sale("m1"), on_sale("m2", 500)]), cfg, now=T0)
    assert r1.baseline and r1.inflow == 0
    r2 = apply(engine, response(ip, T0 + timedelta(hours=1), [sold("m1"), on_sale("m3"), sold("m4", 300), on_sale("m4", 300)]), cfg, now=T0+timedelta(hours=1))
    assert (r2.inflow, r2.outflow) == (1, 2), r2
    dup = apply(engine, response(ip, T0 + timedelta(hours=1), [], task_id=r2.task_id), cfg)
    assert not dup.applied
    with engine.connect() as c:
        print(c.execute(sa.text("select * from ip_stats_hourly")).all())
        print(c.execute(sa.text("select * from ip_alerts")).all())
