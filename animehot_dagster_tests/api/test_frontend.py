"""Like the original server: STATIC_DIR serves a built single-page frontend from ``/`` (its
index.html for unknown non-API paths), without it ``/`` is the packaged dashboard; ENABLE_CORS=true
lets a browser app on another origin call the API; the API and /health are unchanged. Bad values stop the process naming them."""

from __future__ import annotations

import pytest

from animehot_dagster.api.app import create_app
from animehot_dagster.settings import SettingsError, load_settings
from animehot_dagster_tests.api.conftest import NOW
from animehot_dagster_tests.api.contract_check import ContractClient
from animehot_dagster_tests.api.test_endpoints import err, whole

INDEX = "<!doctype html><div id=root></div><script src=/assets/app.js></script>"


@pytest.fixture
def site(tmp_path):
    (tmp_path / "index.html").write_text(INDEX)
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "app.js").write_text("console.log('dashboard')")
    (tmp_path.parent / "secret.txt").write_text("outside")
    return tmp_path


def _client(settings_env: dict, mysql_engine, queue_redis) -> ContractClient:
    settings = load_settings({"ADMIN_API_KEY": "s3cret", "AUTO_MIGRATE": "false", **settings_env})
    return ContractClient(create_app(settings, mysql_engine, queue_redis, clock=lambda: NOW))


def test_static_dir_serves_the_frontend_and_leaves_the_api_alone(site, mysql_engine, queue_redis, market):
    with _client({"STATIC_DIR": str(site)}, mysql_engine, queue_redis) as client:
        home = client.get("/")
        assert home.status_code == 200 and home.text == INDEX and home.headers["content-type"].startswith("text/html")
        assert client.get("/assets/app.js").text == "console.log('dashboard')"
        for route in ("/ip/3", "/leaderboard/hot", "/assets/missing.js"):  # client-side routes load the app
            assert client.get(route).text == INDEX, route
        assert client.get("/../secret.txt").text == INDEX  # nothing outside STATIC_DIR
        assert client.get("/%2e%2e/secret.txt").text == INDEX
        # the API and /health are unchanged, unknown API paths still the 404 envelope
        assert client.get("/health").json()["status"] == "ok"
        assert whole(client.get("/api/v1/ips"))["total"] == 3
        err(client.get("/api/v1/nothing"), 404, "no route")
        err(client.get("/api"), 404)
        err(client.get("/api/v1/ips/9999"), 404)
        assert "/{path}" not in client.get("/openapi.json").json()["paths"]


def test_without_static_dir_the_packaged_dashboard_is_served(mysql_engine, queue_redis, market):
    links = "Dagster UI=http://127.0.0.1:3000,Grafana=https://grafana.example/d/animehot?a=1&b=<2>"
    with _client({"DASHBOARD_LINKS": links}, mysql_engine, queue_redis) as client:
        home = client.get("/")
        assert home.status_code == 200 and home.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="js/app.js">' in home.text
        # the links are written into the page, escaped so that they cannot end its script element
        assert '"url": "http://127.0.0.1:3000"' in home.text and "\\u003c2>" in home.text and "<2>" not in home.text
        for route in ("/ip/3", "/leaderboard/hot", "/js/missing.js"):  # client-side routes load the dashboard
            assert client.get(route).text == home.text, route
        script = client.get("/js/app.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert client.get("/dashboard.css").headers["content-type"].startswith("text/css")
        assert client.get("/../settings.py").text == home.text  # nothing outside the dashboard's directory
        assert client.get("/%2e%2e/static.py").text == home.text
        assert client.get("/health").json()["status"] == "ok"
        assert whole(client.get("/api/v1/ips"))["total"] == 3
        err(client.get("/api/v1/nothing"), 404, "no route")
        err(client.get("/api"), 404)
        assert "/{path}" not in client.get("/openapi.json").json()["paths"]


def test_bad_dashboard_links_stop_the_app_naming_the_variable(mysql_engine, queue_redis):
    for links in ("Dagster UI", "Grafana=ftp://host/", "=http://host/"):
        with pytest.raises(SettingsError, match="DASHBOARD_LINKS"):
            _client({"DASHBOARD_LINKS": links}, mysql_engine, queue_redis)


def test_enable_cors_answers_preflight_and_marks_answers(mysql_engine, queue_redis, market):
    origin = {"Origin": "http://dashboard.example:5173"}
    with _client({"ENABLE_CORS": "true"}, mysql_engine, queue_redis) as client:
        preflight = client.options("/api/v1/ips", headers={**origin, "Access-Control-Request-Method": "PUT",
                                                            "Access-Control-Request-Headers": "content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "PUT" in preflight.headers["access-control-allow-methods"]
        answer = client.get("/api/v1/leaderboard", headers=origin)
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "*"
        assert client.get("/health", headers=origin).headers["access-control-allow-origin"] == "*"
    with _client({}, mysql_engine, queue_redis) as client:
        assert "access-control-allow-origin" not in client.get("/api/v1/leaderboard", headers=origin).headers


@pytest.mark.parametrize("env, named", [
    ({"ENABLE_CORS": "sometimes"}, "ENABLE_CORS"),
    ({"STATIC_DIR": "/nonexistent/dist"}, "STATIC_DIR"),
])
def test_bad_values_stop_the_process_naming_the_variable(env, named, tmp_path):
    with pytest.raises(SettingsError, match=named):
        load_settings(env)


def test_a_static_dir_without_index_html_is_refused(tmp_path):
    with pytest.raises(SettingsError, match="STATIC_DIR.*index.html"):
        load_settings({"STATIC_DIR": str(tmp_path)})
    (tmp_path / "index.html").write_text(INDEX)
    assert load_settings({"STATIC_DIR": str(tmp_path), "ENABLE_CORS": "true"}).enable_cors is True
