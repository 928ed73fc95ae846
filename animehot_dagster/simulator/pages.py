"""HTML the simulator serves: the search results page and the pages that block a crawler.

The results page is client-rendered like Mercari's: the server sends the cells' markup as data
and a small script mounts only the rows near the viewport (a virtualised list), mounting more
and unmounting the far ones as the page scrolls. A crawler therefore has to scroll a screen at
a time and collect cells as they pass; reading the served HTML finds no cells at all.

Like the real web app, the page asks the search API for its results as it loads (the request
the page carries in ``#search-request``, answered in the API's own shape) and mounts the list
once the answer is in, so a browser crawl can read that JSON as it passes.
"""

from __future__ import annotations

import json
from html import escape
from urllib.parse import quote, urlencode

from animehot_dagster.simulator.market import Listing, SearchPage
from animehot_dagster.simulator.wire import page_token, thumbnail_url

# How the real page writes a price, one per cell at random: the currency sign as its own span,
# a full-width sign and a space, or no sign at all (drawn by CSS). Each is matched by at least
# one of the selectors of SPEC §3 (.merPrice, span[class^='merPrice'], [data-testid='price']).
_PRICE_MARKUP = (
    '<span class="merPrice" aria-label="{digits}円"><span class="currency__6b270ca7">¥</span>'
    '<span class="number__6b270ca7">{digits}</span></span>',
    '<span class="merPrice__a1f3c9d2 price__5e1a2c3b" data-testid="price">￥ {digits}</span>',
    '<span class="number__6b270ca7 yen-before__9c1d" data-testid="price">{digits}</span>',
)
_PRICE_TEXT = ("¥{digits}", "￥ {digits}", "{digits}")

_SOLD_STICKER = (
    '<div data-testid="thumbnail-sticker" class="sticker__a6f874a2" aria-label="売り切れ" role="img">'
    '<div class="stickerContent__a6f874a2">SOLD</div></div>'
)


def price_text(listing: Listing) -> str:
    """The text a browser shows for the cell's price element."""
    return _PRICE_TEXT[listing.price_style].format(digits=f"{listing.price:,}")


def render_cell(listing: Listing) -> str:
    title = escape(listing.title)
    price = _PRICE_MARKUP[listing.price_style].format(digits=f"{listing.price:,}")
    sticker = _SOLD_STICKER if listing.is_sold else ""
    return (
        '<li data-testid="item-cell" class="sc-bcd1c877-2 itemCell__b4e6a2">'
        '<div class="sc-bcd1c877-0 cellInner__b4e6a2">'
        f'<a data-testid="thumbnail-link" href="{escape(listing.url_path)}" class="sc-bcd1c877-1 link__b4e6a2">'
        f'<div class="merItemThumbnail fluidWidth__a6d8d8" role="img" id="{escape(listing.api_id)}">'
        '<figure class="imageContainer__f8ddf3a2"><div class="imageWrapper__9b3d4f"><picture>'
        f'<img src="{escape(thumbnail_url(listing))}" alt="{title}のサムネイル" loading="lazy" width="240" height="240">'
        f"</picture></div>{sticker}"
        f'<div class="priceContainer__a6f874a2">{price}</div></figure></div>'
        f'<span data-testid="thumbnail-item-name" class="itemName__a6f874a2">{title}</span>'
        "</a></div></li>"
    )


_STYLE = """
body { margin: 0; font-family: sans-serif; }
header { height: 64px; display: flex; align-items: center; padding: 0 24px; border-bottom: 1px solid #eee; }
main { max-width: 1200px; margin: 0 auto; padding: 16px; }
#item-grid { position: relative; list-style: none; margin: 0; padding: 0; }
#item-grid > li { box-sizing: border-box; padding: 8px; overflow: hidden; }
figure { position: relative; margin: 0; width: 100%; aspect-ratio: 1; background: #f5f5f5; }
img { width: 100%; height: 100%; object-fit: cover; }
.sticker__a6f874a2 { position: absolute; top: 0; left: 0; background: #ea352d; color: #fff; padding: 4px; }
.priceContainer__a6f874a2 { position: absolute; bottom: 8px; left: 0; background: rgba(0,0,0,.6); color: #fff; }
.yen-before__9c1d::before { content: "¥"; }
.itemName__a6f874a2 { display: block; font-size: 12px; height: 3em; overflow: hidden; }
"""

# Mounts the rows within OVERSCAN_ROWS of the viewport, in result order, and unmounts the rest.
_VIRTUAL_LIST_SCRIPT = """
(() => {
  const cells = JSON.parse(document.getElementById("item-grid-data").textContent);
  const grid = document.getElementById("item-grid");
  const ROW_HEIGHT = 320;
  const OVERSCAN_ROWS = 1;
  const mounted = new Map();
  let columns = 1;
  let scheduled = false;

  function layout() {
    columns = Math.max(2, Math.min(6, Math.floor(grid.clientWidth / 190)));
    grid.style.height = Math.ceil(cells.length / columns) * ROW_HEIGHT + "px";
    for (const element of mounted.values()) element.remove();
    mounted.clear();
  }

  function render() {
    scheduled = false;
    const gridTop = grid.getBoundingClientRect().top;
    const firstRow = Math.floor(-gridTop / ROW_HEIGHT) - OVERSCAN_ROWS;
    const lastRow = Math.floor((window.innerHeight - gridTop) / ROW_HEIGHT) + OVERSCAN_ROWS;
    const first = Math.max(0, firstRow * columns);
    const end = Math.min(cells.length, (lastRow + 1) * columns);
    for (const [index, element] of mounted) {
      if (index < first || index >= end) {
        element.remove();
        mounted.delete(index);
      }
    }
    for (let index = first; index < end; index++) {
      if (mounted.has(index)) continue;
      const template = document.createElement("template");
      template.innerHTML = cells[index];
      const element = template.content.firstElementChild;
      const row = Math.floor(index / columns);
      const width = 100 / columns;
      element.style.cssText = `position:absolute;top:${row * ROW_HEIGHT}px;left:${width * (index % columns)}%;` +
        `width:${width}%;height:${ROW_HEIGHT}px`;
      const later = [...mounted.keys()].filter((i) => i > index);
      grid.insertBefore(element, later.length ? mounted.get(Math.min(...later)) : null);
      mounted.set(index, element);
    }
  }

  function schedule() {
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(render);
    }
  }

  function start() {
    window.addEventListener("scroll", schedule, { passive: true });
    window.addEventListener("resize", () => { layout(); schedule(); });
    layout();
    render();
  }

  // As the real web app does, the page asks the search API for its results (the same request
  // and response as API mode) and shows the list once the answer is in; without one it shows
  // the cells it came with.
  const search = document.getElementById("search-request");
  if (!search) {
    start();
    return;
  }
  const { url, asOf, body } = JSON.parse(search.textContent);
  const headers = { "Content-Type": "application/json", "X-Platform": "web" };
  if (asOf) headers["X-Sim-As-Of"] = String(asOf);
  fetch(url, { method: "POST", headers, body: JSON.stringify(body) })
    .then((response) => response.json())
    .catch(() => null)
    .finally(start);
})();
"""


def search_url(keyword: str, status: str | None, page: int, as_of: int | None = None) -> str:
    """The web search URL of SPEC §3 (spaces as %20, not +)."""
    params = {"keyword": keyword, "order": "desc", "sort": "created_time"}
    if status:
        params["status"] = status
    if page > 0:
        params["page_token"] = page_token(page)
    if as_of is not None:
        params["as_of"] = str(as_of)
    return "/search?" + urlencode(params, quote_via=quote)


def _script_json(data: object) -> str:
    # Inside <script> the data must not be able to close the element.
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")


def render_search_page(keyword: str, page: SearchPage, next_url: str | None, search_request: dict | None = None) -> str:
    """``search_request``: what the page's script POSTs to the search API as it loads
    (``url``, ``asOf``, ``body``); None for a page that only renders the cells it carries."""
    title = escape(keyword)
    if page.listings:
        cells = _script_json([render_cell(listing) for listing in page.listings])
        request = (
            f'<script id="search-request" type="application/json">{_script_json(search_request)}</script>'
            if search_request
            else ""
        )
        pagination = (
            f'<div data-testid="pagination-next-button"><a href="{escape(next_url)}">次へ</a></div>'
            if next_url
            else ""
        )
        results = (
            f'<div data-testid="search-result"><ul id="item-grid" data-testid="item-grid"></ul>{pagination}</div>'
            f'<script id="item-grid-data" type="application/json">{cells}</script>{request}'
            f"<script>{_VIRTUAL_LIST_SCRIPT}</script>"
        )
    else:
        results = (
            '<div data-testid="search-result-empty" class="emptyState__3c1f">'
            "<p>出品された商品がありません</p><p>検索条件を変えて、再度お試しください。</p></div>"
        )
    return (
        '<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}の通販・購入はメルカリ</title><style>{_STYLE}</style></head>"
        '<body><div id="__next"><header><a href="/">mercari</a></header>'
        f'<main><h1 class="searchTitle__2f3a">{title}</h1>{results}</main></div></body></html>'
    )


def bad_request_page(message: str) -> str:
    return (
        '<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8"><title>エラー | メルカリ</title></head>'
        f"<body><h1>リクエストが正しくありません</h1><p>{escape(message)}</p></body></html>"
    )


def forbidden_page() -> str:
    return (
        "<!DOCTYPE html><html><head><title>403 Forbidden</title></head><body>"
        "<center><h1>403 Forbidden</h1></center><hr><center>cloudflare</center></body></html>"
    )


def too_many_requests_page() -> str:
    return (
        "<!DOCTYPE html><html><head><title>429 Too Many Requests</title></head><body>"
        "<center><h1>429 Too Many Requests</h1></center><hr><center>cloudflare</center></body></html>"
    )


def cloudflare_challenge_page(ray_id: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>'
        '<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">'
        '<meta name="robots" content="noindex,nofollow"></head>'
        '<body class="no-js"><div class="main-wrapper" role="main"><div class="main-content">'
        '<h1 class="zone-name-title h1">jp.mercari.com</h1>'
        '<h2 class="h2" id="challenge-running">Checking if the site connection is secure</h2>'
        '<div id="challenge-stage"><iframe src="https://challenges.cloudflare.com/cdn-cgi/challenge-platform/'
        f'h/b/turnstile/if/ov2/av0/rcv0/0/{ray_id}/light/normal" '
        'title="Widget containing a Cloudflare security challenge" width="300" height="65"></iframe></div>'
        '<div id="challenge-body-text" class="core-msg spacer">jp.mercari.com needs to review the security '
        "of your connection before proceeding.</div></div></div>"
        '<div class="footer" role="contentinfo"><div class="footer-inner"><div class="ray-id">'
        f"Ray ID: <code>{ray_id}</code></div>"
        '<div class="text-center" id="footer-text">Performance &amp; security by Cloudflare</div>'
        "</div></div></body></html>"
    )


def recaptcha_page() -> str:
    return (
        '<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8"><title>アクセスを確認しています | メルカリ</title>'
        '<script src="https://www.google.com/recaptcha/api.js" async defer></script></head>'
        '<body><form method="post"><p>ロボットによるアクセスではないことを確認してください。</p>'
        '<div class="g-recaptcha" data-sitekey="6LfSimulatorSimulatorSimulatorSimulator00"></div>'
        '<iframe title="reCAPTCHA" src="https://www.google.com/recaptcha/api2/anchor?ar=1&amp;'
        'k=6LfSimulatorSimulatorSimulatorSimulator00&amp;hl=ja&amp;size=normal" width="304" height="78"></iframe>'
        '<button type="submit">続ける</button></form></body></html>'
    )


def hcaptcha_page() -> str:
    return (
        '<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8"><title>アクセスを確認しています | メルカリ</title>'
        '<script src="https://js.hcaptcha.com/1/api.js" async defer></script></head>'
        '<body><form method="post"><p>ロボットによるアクセスではないことを確認してください。</p>'
        '<div class="h-captcha" data-sitekey="10000000-ffff-ffff-ffff-000000000001"></div>'
        '<iframe title="Widget containing checkbox for hCaptcha security challenge" '
        'src="https://newassets.hcaptcha.com/captcha/v1/static/hcaptcha.html#frame=checkbox" '
        'width="303" height="78"></iframe><button type="submit">続ける</button></form></body></html>'
    )
