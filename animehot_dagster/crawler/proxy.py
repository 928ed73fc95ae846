"""The proxy health check done before switching to HTTP_PROXY (the manual's
``curl -x http://proxy:port https://jp.mercari.com -I``)."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

# Answers that mean the proxy did not get us through: it wants credentials, it could not reach
# the site, or the site blocks it too.
_UNHEALTHY_STATUSES = frozenset({403, 407, 429})


def proxy_is_healthy_status(status: int) -> bool:
    return status < 500 and status not in _UNHEALTHY_STATUSES


async def proxy_is_healthy(proxy_url: str, target_url: str, timeout_seconds: float) -> bool:
    try:
        async with httpx.AsyncClient(proxy=proxy_url, timeout=timeout_seconds, trust_env=False) as client:
            response = await client.head(target_url)
    except httpx.HTTPError:
        return False
    return proxy_is_healthy_status(response.status_code)


def describe_proxy(proxy_url: str) -> str:
    """The proxy without its credentials, for logs."""
    parts = urlsplit(proxy_url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}" if parts.port else f"{parts.scheme}://{parts.hostname}"
