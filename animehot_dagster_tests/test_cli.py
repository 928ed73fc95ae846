"""``animehot import`` and ``animehot replay`` run as a user runs them: subprocesses on MySQL."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from animehot_dagster.domain.messages import CrawlResponse, Item, ItemStatus, decode_response, encode_response
from animehot_dagster.storage.db import create_engine
from animehot_dagster.storage.schema import ip_metadata
from animehot_dagster_tests.domain.test_items import NO_PRICE, MarketModel

ANIMEHOT = Path(sys.executable).parent / "animehot"
SAMPLE_IPS = Path("/work/shared/data/ips_sample.json")
JAPAN = timezone(timedelta(hours=9))


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    return subprocess.run([str(ANIMEHOT), *args], env={**base, **env}, capture_output=True, text=True, timeout=300)


def ips_in(url: str) -> dict[str, tuple[int, str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(ip_metadata.c.name, ip_metadata.c.id, ip_metadata.c.weight, ip_metadata.c.category))
            return {name: (ip_id, f"{weight:.2f}", category) for name, ip_id, weight, category in rows}
    finally:
        engine.dispose()


def write_json(path: Path, document) -> Path:
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ import


def test_import_the_sample_ips(mysql_url):
    done = run("import", str(SAMPLE_IPS), DATABASE_URL=mysql_url)
    assert done.returncode == 0, done.stderr
    assert "created 10, updated 0, failed 0" in done.stdout
    catalog = ips_in(mysql_url)
    expected = {ip["name"] for ip in json.loads(SAMPLE_IPS.read_text(encoding="utf-8"))["ips"]}
    assert set(catalog) == expected
    assert catalog["ちいかわ"][1:] == ("2.00", "character")
    assert catalog["葬送のフリーレン"][1] == "0.50"


def test_import_reports_each_failed_row_with_its_reason(mysql_url, tmp_path):
    rows = [
        {"name": "鬼滅の刃", "category": "anime", "weight": 1.5},
        {"name": "ウマ娘", "category": "robot"},
        {"name_en": "no name"},
        {"name": "鬼滅の刃", "category": "anime"},
        {"name": "ポケモン", "weight": "heavy"},
        {"name": "ガンダム", "category": "anime", "color": "red"},
        {"name": "初音ミク", "category": "vocaloid"},
    ]
    done = run("import", "--database-url", mysql_url, str(write_json(tmp_path / "ips.json", {"ips": rows})))
    assert done.returncode != 0  # some rows failed
    lines = done.stdout.splitlines()
    assert lines[0] == "created 2, updated 0, failed 5"
    failures = {int(line.split("failed row ")[1].split()[0]): line for line in lines[1:]}
    assert sorted(failures) == [1, 2, 3, 4, 5]
    assert "category" in failures[1] and "robot" in failures[1]
    assert "name" in failures[2] and "required" in failures[2]
    assert "duplicate of row 0" in failures[3]
    assert "weight" in failures[4] and "heavy" in failures[4]
    assert "color" in failures[5]
    assert set(ips_in(mysql_url)) == {"鬼滅の刃", "初音ミク"}  # good rows still land
    assert ips_in(mysql_url)["鬼滅の刃"][1] == "1.50"


def test_import_of_existing_ips_fails_without_upsert_and_updates_with_it(mysql_url, tmp_path):
    first = run("import", str(write_json(tmp_path / "a.json", {"ips": [{"name": "呪術廻戦", "weight": 1}, {"name": "ワンピース"}]})), DATABASE_URL=mysql_url)
    assert first.returncode == 0, first.stderr
    ids = {name: row[0] for name, row in ips_in(mysql_url).items()}
    again = write_json(tmp_path / "b.json", {"ips": [{"name": "呪術廻戦", "weight": 2, "category": "anime"}, {"name": "推しの子"}]})

    refused = run("import", str(again), DATABASE_URL=mysql_url)
    assert refused.returncode != 0
    assert refused.stdout.splitlines()[0] == "created 1, updated 0, failed 1"
    assert "already exists" in refused.stdout and "呪術廻戦" in refused.stdout
    assert ips_in(mysql_url)["呪術廻戦"][1] == "1.00"

    upserted = run("import", "--upsert", str(again), DATABASE_URL=mysql_url)
    assert upserted.returncode == 0, upserted.stderr
    assert upserted.stdout.splitlines()[0] == "created 0, updated 2, failed 0"
    catalog = ips_in(mysql_url)
    assert catalog["呪術廻戦"] == (ids["呪術廻戦"], "2.00", "anime")  # same IP, new values
    assert set(catalog) == {"呪術廻戦", "ワンピース", "推しの子"}


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"ips": [ {"name": "x"}, ]}', "not JSON (line 1"),
        ('{"ips": {"name": "x"}}', 'a list under "ips"'),
        ('[{"name": "x"}]', 'a list under "ips"'),
        (None, "cannot read"),
    ],
)
def test_import_of_a_malformed_file_is_a_clear_error(mysql_url, tmp_path, content, message):
    path = tmp_path / "ips.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    done = run("import", str(path), DATABASE_URL=mysql_url)
    assert done.returncode != 0
    assert message in done.stderr
    assert str(path) in done.stderr
    assert "Traceback" not in done.stderr
    assert ips_in(mysql_url) == {}


# ------------------------------------------------------------------------------ replay


@dataclasses.dataclass
class _Listing:
    source_id: str
    price: int
    listed_at: datetime
    sold_at: datetime | None = None


def simulate_results(ip_ids: list[int], seed: int, start: datetime) -> list[CrawlResponse]:
    """A small market per IP — listings arrive, sell, change price, get relisted — crawled the
    way the crawler does it: the newest on-sale items, then the newest sold ones."""
    rng = random.Random(seed)
    results = []
    serial = 0
    for ip in ip_ids:
        market: list[_Listing] = []
        at = start + timedelta(seconds=rng.randrange(3600))
        for number in range(rng.randint(5, 10)):
            at += timedelta(seconds=rng.choice([300, 1200, 2400, 3600, 3600, 7200, 25 * 3600, 49 * 3600]))
            for _ in range(rng.randint(0, 5)):
                serial += 1
                price = rng.choice([300, 500, 1200, 1200, 2500, 0, NO_PRICE])
                market.append(_Listing(f"m{seed}{serial:05d}", price, at))
            for listing in market:
                if listing.sold_at is None and rng.random() < 0.3:
                    listing.sold_at = at
                elif listing.sold_at is None and rng.random() < 0.1:
                    listing.price += 100  # a price cut, in reverse
                elif listing.sold_at is not None and rng.random() < 0.05:
                    listing.sold_at = None  # relisted
            on_sale = sorted((x for x in market if x.sold_at is None), key=lambda x: x.listed_at, reverse=True)[:8]
            sold_items = sorted((x for x in market if x.sold_at is not None), key=lambda x: x.sold_at, reverse=True)[:8]
            items = [Item(x.source_id, f"グッズ {x.source_id}", x.price, "", f"https://jp.mercari.com/item/{x.source_id}") for x in on_sale]
            items += [Item(x.source_id, f"グッズ {x.source_id}", x.price, "", "", ItemStatus.SOLD) for x in sold_items]
            if sold_items and rng.random() < 0.5:
                # sold between the on-sale and the sold phase: reported in both
                late = sold_items[0]
                items.insert(0, Item(late.source_id, f"グッズ {late.source_id}", late.price))
            error = rng.choice([""] * 8 + ["no_items", "timeout: every page failed"])
            if error == "no_items":
                items = []
            results.append(CrawlResponse(
                ip_id=ip, task_id=f"replay-{seed}-{ip}-{number}", crawled_at=int(at.timestamp()),
                items=tuple(items), total_found=len(items), error_message=error, pages_crawled=10,
            ))
    results.sort(key=lambda r: (r.crawled_at, r.ip_id))
    return results


def _expected_rows(model: MarketModel) -> list[dict]:
    return [
        {
            "ip_id": ip,
            "hour_bucket": hour.astimezone(JAPAN).strftime("%Y-%m-%dT%H:%M:%S+09:00"),
            "inflow": figures.inflow,
            "outflow": figures.outflow,
            "liquidity_index": None if figures.liquidity_index is None else float(figures.liquidity_index),
        }
        for (ip, hour), figures in sorted(model.hours().items())
    ]


def _replay(url: str, results_file: Path) -> subprocess.CompletedProcess:
    return run("replay", "--database-url", url, "--ips", str(SAMPLE_IPS), str(results_file))


@pytest.mark.parametrize("seed", [7, 2024])
def test_replay_prints_the_hourly_rows_the_model_predicts(mysql_url, tmp_path, seed):
    imported = run("import", str(SAMPLE_IPS), DATABASE_URL=mysql_url)
    assert imported.returncode == 0, imported.stderr
    catalog = ips_in(mysql_url)
    ip_ids = [catalog[name][0] for name in ("初音ミク", "ちいかわ", "呪術廻戦", "ホロライブ")]
    start = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
    results = simulate_results(ip_ids, seed, start)
    good = [encode_response(r) for r in results]
    good.insert(len(good) // 2, good[1])  # a result delivered twice: applied once

    malformed = json.loads(good[5])
    malformed["items"] = [{"sourceId": "m1"}, {"sourceId": "m2", "price": "12yen"}]
    bad = {
        "malformed": (json.dumps(malformed, ensure_ascii=False), "CrawlResponse.items[1].price"),
        "not json": ("{not json", "CrawlResponse: not JSON"),
        "unknown ip": (encode_response(CrawlResponse(ip_id=999_999, task_id="ghost", crawled_at=int(start.timestamp()) + 60)), "999999"),
    }
    # (text, what stderr must say about it; None for a good line)
    lines: list[tuple[str, str | None]] = [(line, None) for line in good]
    lines.insert(3, ("", None))  # blank lines are ignored
    lines.insert(6, bad["malformed"])
    lines.insert(len(lines) // 2, bad["unknown ip"])
    lines.append(bad["not json"])
    results_file = tmp_path / "results.jsonl"
    results_file.write_text("\n".join(text for text, _ in lines) + "\n", encoding="utf-8")

    model = MarketModel()
    for text in good:
        r = decode_response(text)
        model.crawl(r.ip_id, r.task_id, datetime.fromtimestamp(r.crawled_at, UTC), r.items, r.error_message)
    expected = _expected_rows(model)
    assert any(row["outflow"] for row in expected) and any(row["inflow"] for row in expected)

    done = _replay(mysql_url, results_file)
    assert done.returncode == 0, done.stderr
    stderr = done.stderr.splitlines()
    for number, (_, what) in enumerate(lines, start=1):
        if what is not None:
            assert any(line.startswith(f"line {number}: skipped") and what in line for line in stderr), (number, done.stderr)
    assert sum(": skipped:" in line for line in stderr) == len(bad)
    assert f"replayed {len(good)} results, skipped {len(bad)} lines" in done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == expected

    # Replaying the same file again changes nothing: every task was applied already.
    again = _replay(mysql_url, results_file)
    assert again.returncode == 0, again.stderr
    assert [json.loads(line) for line in again.stdout.splitlines()] == expected
