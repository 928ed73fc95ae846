"""deploy/nginx: the real nginx (Debian's nginx-light) with the production template, rendered the
way the nginx image renders it, in front of a real ``animehot api`` and a real dagster-webserver
started with the production --path-prefix; a self-signed certificate, unprivileged ports."""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from animehot_dagster_tests.conftest import REDIS_URL, fresh_mysql_database
from animehot_dagster_tests.deploy.tools import REPO

TEMPLATE = REPO / "deploy/nginx/templates/default.conf.template"
BIN = REPO / ".venv/bin"
USER, PASSWORD = "admin", "s3cret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def render(template: str, values: dict[str, str]) -> str:
    """What the nginx image's envsubst does: every ${NAME} of its environment is replaced."""
    rendered = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], template)
    assert "${" not in rendered
    return rendered


def wait_until_answering(url: str, process: subprocess.Popen, log: Path, deadline_seconds: float = 60) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args[0]} exited {process.returncode}: {log.read_text()[-2000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.3)
    pytest.fail(f"{url} did not answer within {deadline_seconds:.0f} s: {log.read_text()[-2000:]}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def site() -> Iterator[dict]:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        pytest.fail("nginx is missing: apt-get install nginx-light")
    # nginx's workers drop root and must read the password file: a world-readable directory.
    workdir = Path(tempfile.mkdtemp(prefix="animehot-nginx-"))
    workdir.chmod(0o755)
    processes: list[subprocess.Popen] = []

    def start(name: str, args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
        log = workdir / f"{name}.log"
        with log.open("w") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir)
        processes.append(process)
        return process, log

    try:
        with fresh_mysql_database("animehot_nginx") as database_url:
            base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "MYSQL_", "REDIS_"))}
            api_port = free_port()
            api, api_log = start("api", [str(BIN / "animehot"), "api", "--host", "127.0.0.1", "--port", str(api_port),
                                         "--metrics-port", "0"],
                                 {**base_env, "DATABASE_URL": database_url, "REDIS_URL": REDIS_URL,
                                  "APP_ENV": "local", "AUTO_MIGRATE": "false"})
            dagster_home = workdir / "dagster_home"
            dagster_home.mkdir()
            dagster_port = free_port()
            dagster, dagster_log = start(
                "dagster-webserver",
                [str(BIN / "dagster-webserver"), "--empty-workspace", "-h", "127.0.0.1", "-p", str(dagster_port),
                 "--path-prefix", "/dagster"],
                {**base_env, "DAGSTER_HOME": str(dagster_home)},
            )

            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                            "-keyout", str(workdir / "privkey.pem"), "-out", str(workdir / "fullchain.pem")],
                           check=True, capture_output=True)
            hashed = subprocess.run(["openssl", "passwd", "-apr1", PASSWORD], check=True, capture_output=True,
                                    text=True).stdout.strip()
            (workdir / "dagster.htpasswd").write_text(f"{USER}:{hashed}\n")
            (workdir / "dagster.htpasswd").chmod(0o644)

            http_port, https_port = free_port(), free_port()
            (workdir / "default.conf").write_text(render(TEMPLATE.read_text(), {
                "NGINX_HTTP_PORT": str(http_port), "NGINX_HTTPS_PORT": str(https_port),
                "API_UPSTREAM": f"127.0.0.1:{api_port}", "DAGSTER_UPSTREAM": f"127.0.0.1:{dagster_port}",
                "TLS_CERTIFICATE": str(workdir / "fullchain.pem"), "TLS_CERTIFICATE_KEY": str(workdir / "privkey.pem"),
                "DAGSTER_HTPASSWD": str(workdir / "dagster.htpasswd"),
            }))
            # The main file of the nginx image, reduced to what a private prefix needs.
            (workdir / "nginx.conf").write_text(
                f"pid {workdir}/nginx.pid;\n"
                f"error_log {workdir}/error.log;\n"
                "events {}\n"
                "http {\n"
                f"    access_log {workdir}/access.log;\n"
                f"    include {workdir}/default.conf;\n"
                "}\n"
            )
            command = [nginx, "-p", str(workdir), "-c", str(workdir / "nginx.conf")]
            checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
            assert checked.returncode == 0, checked.stderr
            server, server_log = start("nginx", [*command, "-g", "daemon off;"], base_env)

            wait_until_answering(f"http://127.0.0.1:{api_port}/health", api, api_log)
            wait_until_answering(f"http://127.0.0.1:{dagster_port}/dagster/server_info", dagster, dagster_log)
            wait_until_answering(f"http://127.0.0.1:{http_port}/", server, workdir / "error.log")
            yield {
                "https": f"https://localhost:{https_port}",
                "http": f"http://localhost:{http_port}",
                "tls": ssl.create_default_context(cafile=str(workdir / "fullchain.pem")),
            }
    finally:
        for process in reversed(processes):
            stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


def test_health_through_https(site):
    response = httpx.get(f"{site['https']}/health", verify=site["tls"])
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.headers["strict-transport-security"].startswith("max-age=")


def test_api_through_https(site):
    response = httpx.get(f"{site['https']}/api/v1/ips", verify=site["tls"])
    assert response.status_code == 200
    assert response.json()["data"] == []  # a list: the array itself in data (SPEC §9)


def test_http_redirects_to_https(site):
    response = httpx.get(f"{site['http']}/api/v1/ips?page=2", follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == "https://localhost/api/v1/ips?page=2"


@pytest.mark.parametrize("path", ["/metrics", "/metrics/", "/api/../metrics", "/nothing"])
def test_metrics_and_anything_else_are_not_served(site, path):
    response = httpx.get(f"{site['https']}{path}", verify=site["tls"])
    assert response.status_code == 404
    assert "# TYPE" not in response.text


def test_dagster_ui_needs_the_password(site):
    url = f"{site['https']}/dagster/server_info"
    assert httpx.get(url, verify=site["tls"]).status_code == 401
    assert httpx.get(url, verify=site["tls"], auth=(USER, "wrong")).status_code == 401
    response = httpx.get(url, verify=site["tls"], auth=(USER, PASSWORD))
    assert response.status_code == 200
    assert response.json()["dagster_webserver_version"] == "1.13.27"


def test_root_serves_the_dashboard_and_its_files(site):
    page = httpx.get(f"{site['https']}/", verify=site["tls"], follow_redirects=False)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<link rel="stylesheet" href="dashboard.css">' in page.text
    for asset, kind in (("/dashboard.css", "text/css"), ("/js/app.js", "javascript")):
        answer = httpx.get(f"{site['https']}{asset}", verify=site["tls"])
        assert answer.status_code == 200 and kind in answer.headers["content-type"], asset
    # The dashboard's client-side routes are hashes: other paths are still not served.
    assert httpx.get(f"{site['https']}/js/../metrics", verify=site["tls"]).status_code == 404
