"""A seeded, deterministic Mercari market per keyword: what is listed, sold and withdrawn, and when.

Pure: no I/O and no clock; every question is asked "as of" a unix time. The market is generated
lazily one hour at a time: the listings created in hour ``h`` of a keyword come from a random
generator seeded by (seed, keyword, h) alone, so any hour can be generated on demand, in any
order, and always comes out the same. A listing's whole life (sale or withdrawal, end of
trading) is drawn when its hour is generated, so a query at any moment is a filter, never a
simulation run.

A keyword's market keeps the listings created within ``horizon_hours`` of the moment asked
about; older ones have aged out of the search index (they are neither served nor counted), and
a listing whose sale would come after it aged out never sells. That keeps the ground truth and
what the search can show the same world.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import math
import struct
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np

from animehot_dagster.domain.scores import NO_PRICE

HOUR = 3600
PAGE_SIZE = 120
DEFAULT_HORIZON_HOURS = 21 * 24

# Item ids are unique per (keyword, hour, serial) only while serial < this; no realistic
# market comes near it (several hundred listings an hour at the hottest).
MAX_LISTINGS_PER_HOUR = 100_000

# Stands for "never happens" in the int64 event-time arrays; compares after every real time.
NEVER = np.iinfo(np.int64).max

# Relative activity of Mercari Japan by Japan-time hour of day (0h..23h): people list and buy
# in the evening and barely at all before dawn. Normalised below to a mean of 1.
_ACTIVITY_BY_JST_HOUR = (
    0.95, 0.65, 0.40, 0.25, 0.20, 0.20, 0.30, 0.50, 0.70, 0.85, 0.95, 1.00,
    1.10, 1.05, 1.00, 1.00, 1.05, 1.10, 1.25, 1.40, 1.60, 1.80, 1.75, 1.35,
)  # fmt: skip
DAILY_ACTIVITY = np.array(_ACTIVITY_BY_JST_HOUR) / np.mean(_ACTIVITY_BY_JST_HOUR)
JST_OFFSET_HOURS = 9


class ItemStatus(enum.Enum):
    ON_SALE = "on_sale"
    TRADING = "trading"
    SOLD_OUT = "sold_out"


ALL_STATUSES = frozenset(ItemStatus)
SOLD_STATUSES = frozenset({ItemStatus.TRADING, ItemStatus.SOLD_OUT})


def normalize_keyword(text: str) -> str:
    """The form keywords are matched in: NFKC, case-folded, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def jst_hour_of_day(hours: np.ndarray) -> np.ndarray:
    """Japan-time hour of day (0..23) of absolute unix hour indices."""
    return (hours + JST_OFFSET_HOURS) % 24


@dataclasses.dataclass(frozen=True)
class Surge:
    """A window [start, end) (unix seconds) that multiplies a keyword's listing and sale rates.

    A listing surge (a new release, a sell-off) multiplies arrivals; a buying rush multiplies
    the rate at which listed items sell. Applied per whole hour: an hour is in the window when
    its start is.
    """

    start: int
    end: int
    listing_multiplier: float = 1.0
    sale_multiplier: float = 1.0

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError("a surge must end after it starts")
        if self.listing_multiplier < 0 or self.sale_multiplier < 0:
            raise ValueError("surge multipliers cannot be negative")


@dataclasses.dataclass(frozen=True)
class KeywordProfile:
    """How the market of one keyword behaves. Rates are means; the market draws around them."""

    keyword: str
    listings_per_hour: float
    daily_cycle: float = 1.0  # 0 = flat, 1 = the full Japan-time activity curve
    price_median: int = 2000
    price_sigma: float = 0.8  # of the log-normal price
    no_price_fraction: float = 0.02
    shop_fraction: float = 0.04
    sell_probability: float = 0.55  # the rest are withdrawn by their sellers
    mean_hours_to_sell: float = 36.0
    mean_hours_to_withdraw: float = 120.0
    mean_hours_trading: float = 48.0  # between the sale and SOLD_OUT
    surges: tuple[Surge, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if not self.keyword.strip():
            problems.append("keyword is empty")
        if not 0 <= self.listings_per_hour <= 10_000:
            problems.append("listings_per_hour must be within 0..10000")
        if not 0 <= self.daily_cycle <= 1:
            problems.append("daily_cycle must be within 0..1")
        if self.price_median < 300:
            problems.append("price_median must be at least 300 (Mercari's minimum price)")
        if self.price_sigma < 0:
            problems.append("price_sigma cannot be negative")
        for name in ("no_price_fraction", "shop_fraction", "sell_probability"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be within 0..1")
        for name in ("mean_hours_to_sell", "mean_hours_to_withdraw", "mean_hours_trading"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        if problems:
            raise ValueError(f"keyword {self.keyword!r}: " + "; ".join(problems))

    def activity(self, hours: np.ndarray) -> np.ndarray:
        """The daily-cycle factor (mean 1) of absolute unix hour indices."""
        return 1 + self.daily_cycle * (DAILY_ACTIVITY[jst_hour_of_day(hours)] - 1)

    def _surge_factor(self, hours: np.ndarray, field: str) -> np.ndarray:
        factor = np.ones(len(hours))
        starts = hours * HOUR
        for surge in self.surges:
            factor[(starts >= surge.start) & (starts < surge.end)] *= getattr(surge, field)
        return factor

    def expected_listings(self, hours: np.ndarray) -> np.ndarray:
        """Mean number of listings created in each of the given unix hours."""
        return self.listings_per_hour * self.activity(hours) * self._surge_factor(hours, "listing_multiplier")

    def sale_activity(self, hours: np.ndarray) -> np.ndarray:
        """How fast the sale clock runs in each hour, relative to an average hour."""
        return self.activity(hours) * self._surge_factor(hours, "sale_multiplier")


@dataclasses.dataclass(frozen=True)
class Realism:
    """How the search departs from a plain filter of the market, as measured on recorded real
    responses (each part can be switched off). ``/__truth`` ignores all of it: it counts every
    listing and sale, whether or not the search shows it.

    - Some matching listings are filtered out of the pages after ``numFound`` was counted:
      above ``exact_count_up_to`` results the count exceeds what the pages return by a few per
      cent, and full pages hold 116-119 items instead of 120.
    - Sellers cut the price of some listings; an edited listing is served by its edit time,
      among the newest, with ``updated`` at the edit.
    - A sold listing's ``updated`` is stamped by later transaction events on a ten-minute grid
      (shipping, rating; items bought together share one), not by the sale.
    - A new listing reaches the search index ``index_delay_seconds`` after it is listed.
    - Sellers delete some sold listings later: they leave the search and its count.
    """

    hidden_fraction: float = 0.03
    exact_count_up_to: int = 19
    edit_probability: float = 0.3
    mean_hours_to_edit: float = 30.0
    edit_price_factor: float = 0.9
    transaction_updates: bool = True
    index_delay_seconds: int = 60
    sold_delete_fraction: float = 0.03
    mean_hours_to_delete: float = 96.0

    def __post_init__(self) -> None:
        problems = []
        for name in ("hidden_fraction", "edit_probability", "sold_delete_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be within 0..1")
        for name in ("mean_hours_to_edit", "mean_hours_to_delete", "edit_price_factor"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        if self.index_delay_seconds < 0 or self.exact_count_up_to < 0:
            problems.append("index_delay_seconds and exact_count_up_to cannot be negative")
        if problems:
            raise ValueError("realism: " + "; ".join(problems))

    @classmethod
    def off(cls) -> Realism:
        """The search as a plain filter of the market (the simulator before these were modelled)."""
        return cls(
            hidden_fraction=0.0, edit_probability=0.0, transaction_updates=False, index_delay_seconds=0,
            sold_delete_fraction=0.0,
        )


REALISTIC = Realism()
TRANSACTION_GRID_SECONDS = 600
MEAN_HOURS_TO_SETTLE = 120.0


@dataclasses.dataclass(frozen=True)
class Listing:
    """One listing as the search shows it at ``as_of``."""

    source_id: str  # the crawler's id: m<11 digits> or shops_<product id>
    api_id: str  # the id the API writes: m<11 digits> or the bare shop product id
    title: str
    price: int  # NO_PRICE when the seller set none
    status: ItemStatus
    created: int
    updated: int
    seller_id: str
    buyer_id: str  # empty while on sale
    is_shop: bool
    item_condition_id: int
    shipping_payer_id: int
    shipping_method_id: int
    category_id: int
    price_style: int  # which of the web page's real price formats this cell is written in

    @property
    def url_path(self) -> str:
        return f"/shops/product/{self.api_id}" if self.is_shop else f"/item/{self.api_id}"

    @property
    def is_sold(self) -> bool:
        return self.status in SOLD_STATUSES


@dataclasses.dataclass(frozen=True)
class SearchPage:
    listings: tuple[Listing, ...]
    page: int  # 0-based; page N is what page token v1:N asks for
    page_size: int
    num_found: int

    @property
    def has_next(self) -> bool:
        return (self.page + 1) * self.page_size < self.num_found


@dataclasses.dataclass(frozen=True)
class HourTruth:
    """What really happened in one hour [hour_start, hour_start + 1 h) of a keyword's market."""

    hour_start: int
    created: int  # listings created
    sold: int  # listings whose sale falls in the hour
    withdrawn: int


@dataclasses.dataclass(frozen=True)
class ListingEvents:
    """When each listing the search index holds at a moment was created, sold and withdrawn
    (unix seconds, newest created first; NEVER for what never happens, even after that moment):
    what a harness needs to tell which of a crawl's misses were visible to it at all."""

    created: np.ndarray
    sale_at: np.ndarray
    withdrawn_at: np.ndarray


@dataclasses.dataclass(frozen=True)
class _Listings:
    """Event times of listings, newest created first (one hour's, or a window of hours)."""

    hour: np.ndarray  # unix hour index the listing was created in
    serial: np.ndarray  # order of creation within that hour: with hour, the listing's identity
    created: np.ndarray
    sale_at: np.ndarray  # NEVER unless it sells
    sold_out_at: np.ndarray  # NEVER unless it sells
    withdrawn_at: np.ndarray  # NEVER unless it is withdrawn
    hidden: np.ndarray  # counted by the search but filtered from its pages
    edited_at: np.ndarray  # NEVER unless the seller cuts the price while it is on sale
    settled_at: np.ndarray  # the last transaction event after SOLD_OUT (NEVER unless it sells)
    deleted_at: np.ndarray  # NEVER unless the seller deletes it once sold

    def __len__(self) -> int:
        return len(self.created)

    @classmethod
    def concatenate(cls, parts: list[_Listings]) -> _Listings:
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(cls)))

    def status_mask(
        self, as_of: int, horizon_seconds: int, statuses: frozenset[ItemStatus], index_delay: int = 0
    ) -> np.ndarray:
        visible = (self.created <= as_of - index_delay) & (self.created > as_of - horizon_seconds)
        selected = np.zeros(len(self), dtype=bool)
        if ItemStatus.ON_SALE in statuses:
            selected |= (self.sale_at > as_of) & (self.withdrawn_at > as_of)
        if ItemStatus.TRADING in statuses:
            selected |= (self.sale_at <= as_of) & (self.sold_out_at > as_of)
        if ItemStatus.SOLD_OUT in statuses:
            selected |= (self.sold_out_at <= as_of) & (self.deleted_at > as_of)
        return visible & selected

    def sort_key(self, as_of: int) -> np.ndarray:
        """What the created-time sort orders by: an edited listing counts as new at its edit."""
        return np.where(self.edited_at <= as_of, self.edited_at, self.created)


def _keyword_entropy(seed: int, keyword: str) -> tuple[int, ...]:
    digest = hashlib.blake2b(f"{seed}\x00{keyword}".encode(), digest_size=16).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "big") for i in range(0, 16, 4))


def _generate_hour(
    profile: KeywordProfile, entropy: tuple[int, ...], hour: int, horizon_hours: int, realism: Realism
) -> _Listings:
    """The listings created in unix hour ``hour`` and their fates. Draw order is part of the
    market's identity: changing it changes every market."""
    rng = np.random.default_rng(np.random.SeedSequence((*entropy, hour)))
    start = hour * HOUR
    horizon_seconds = horizon_hours * HOUR
    count = min(int(rng.poisson(profile.expected_listings(np.array([hour]))[0])), MAX_LISTINGS_PER_HOUR - 1)
    offsets = np.sort(rng.integers(0, HOUR, count))[::-1]
    created = start + offsets.astype(np.int64)
    serial = np.arange(count - 1, -1, -1, dtype=np.int64)
    will_sell = rng.random(count) < profile.sell_probability
    sale_effort = rng.exponential(profile.mean_hours_to_sell, count)
    hours_to_withdraw = rng.exponential(profile.mean_hours_to_withdraw, count)
    hours_trading = rng.exponential(profile.mean_hours_trading, count)

    # The sale clock runs faster in busy hours and surges: a listing sells once the activity
    # accumulated since its creation reaches its drawn effort (in average-hour units).
    weights = profile.sale_activity(np.arange(hour, hour + horizon_hours + 2))
    cumulative = np.concatenate(([0.0], np.cumsum(weights)))
    target = (offsets / HOUR) * weights[0] + sale_effort
    knot = np.searchsorted(cumulative, target, side="right") - 1
    reachable = knot < len(weights)
    knot = np.minimum(knot, len(weights) - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sale_hours = knot + (target - cumulative[knot]) / weights[knot]
    sale_at = np.maximum(start + np.ceil(np.where(reachable, sale_hours, 0) * HOUR).astype(np.int64), created)
    sells = will_sell & reachable & (sale_at - created < horizon_seconds)
    trading_seconds = np.maximum(np.ceil(hours_trading * HOUR).astype(np.int64), 60)
    withdraw_seconds = np.ceil(hours_to_withdraw * HOUR).astype(np.int64)
    withdraws = ~will_sell & (withdraw_seconds < horizon_seconds)
    sold_out_at = sale_at + trading_seconds
    # The departures of the search from the market come from a stream of their own, so the
    # market itself (what is listed and sold, when) is the same with them on or off.
    extra = np.random.default_rng(np.random.SeedSequence((*entropy, hour, 1)))
    hidden = extra.random(count) < realism.hidden_fraction
    edited_at = created + np.ceil(extra.exponential(realism.mean_hours_to_edit, count) * HOUR).astype(np.int64)
    ends_on_sale = np.where(sells, sale_at, np.where(withdraws, created + withdraw_seconds, NEVER))
    edits = (extra.random(count) < realism.edit_probability) & (edited_at < ends_on_sale)
    settled_at = sold_out_at + np.ceil(extra.exponential(MEAN_HOURS_TO_SETTLE, count) * HOUR).astype(np.int64)
    deleted_at = sold_out_at + np.ceil(extra.exponential(realism.mean_hours_to_delete, count) * HOUR).astype(np.int64)
    deletes = sells & (extra.random(count) < realism.sold_delete_fraction)
    return _Listings(
        hour=np.full(count, hour, dtype=np.int64),
        serial=serial,
        created=created,
        sale_at=np.where(sells, sale_at, NEVER),
        sold_out_at=np.where(sells, sold_out_at, NEVER),
        withdrawn_at=np.where(withdraws, created + withdraw_seconds, NEVER),
        hidden=hidden,
        edited_at=np.where(edits, edited_at, NEVER),
        settled_at=np.where(sells, settled_at, NEVER),
        deleted_at=np.where(deletes, deleted_at, NEVER),
    )


# ---- what a listing looks like: drawn per listing from its identity, only when it is shown ----

_GOODS = (
    "アクリルスタンド", "缶バッジ", "ぬいぐるみ", "フィギュア", "クリアファイル", "ラバーストラップ",
    "タペストリー", "B2ポスター", "アクリルキーホルダー", "色紙", "ブロマイド", "トレカ", "Tシャツ",
    "一番くじ A賞 フィギュア", "一番くじ ラストワン賞", "缶バッジ 10個セット", "ポストカード",
    "抱き枕カバー", "マグカップ", "ミニキャラ 缶バッジ", "プライズ フィギュア", "原画展 限定 グッズ",
)  # fmt: skip
_EXTRAS = (
    "新品未開封", "美品", "非売品", "限定", "公式", "まとめ売り", "未使用", "匿名配送", "即購入OK",
    "セット&おまけ付き", "<値下げ>", "大量", "",
)  # fmt: skip
_TITLE_FORMS = (
    "{keyword} {goods}",
    "【{keyword}】{goods} {extra}",
    "{keyword} {goods} {extra}",
    "{goods} {keyword} {extra}",
    "{extra} {keyword} {goods}",
)
_SHIPPING_METHODS = (5, 14, 14, 14, 17, 17, 6)
_CATEGORIES = (694, 695, 696, 700, 745, 1, 81)
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# m-ids scatter (hour, serial) over the 11-digit space by an affine bijection, so they look
# random yet never collide within a keyword: (x * A + B) mod 9e10 with A coprime to 9e10.
_ID_SPACE = 9 * 10**10
_ID_MULTIPLIER = 25_214_903_917


class _Draws:
    """Uniform numbers in [0, 1) read off a hash of a listing's identity: as stable as a seeded
    generator and several times cheaper, which matters when a page materialises 120 listings."""

    _COUNT = 16

    def __init__(self, identity: bytes) -> None:
        self._values = struct.unpack(f">{self._COUNT}I", hashlib.blake2b(identity, digest_size=64).digest())
        self._next = 0

    def uniform(self) -> float:
        value = self._values[self._next] / 2**32
        self._next += 1
        return value

    def choice(self, options: tuple):
        return options[int(self.uniform() * len(options))]

    def integer(self, low: int, high: int) -> int:
        """Uniform in low..high inclusive."""
        return low + int(self.uniform() * (high - low + 1))

    def gauss(self) -> float:
        """Standard normal (Box-Muller)."""
        radius = math.sqrt(-2.0 * math.log(1.0 - self.uniform()))
        return radius * math.cos(2 * math.pi * self.uniform())


def _draw_price(draws: _Draws, profile: KeywordProfile) -> int:
    if draws.uniform() < profile.no_price_fraction:
        return NO_PRICE
    raw = profile.price_median * math.exp(profile.price_sigma * draws.gauss())
    # Sellers write round figures, and now and then a 1,999-style price.
    price = round(raw, -1) if raw < 1000 else round(raw, -2)
    if draws.uniform() < 0.15:
        price -= 1
    return int(min(max(price, 300), NO_PRICE - 1))


def _draw_title(draws: _Draws, keyword: str) -> str:
    form = draws.choice(_TITLE_FORMS)
    return " ".join(form.format(keyword=keyword, goods=draws.choice(_GOODS), extra=draws.choice(_EXTRAS)).split())


class Market:
    """The markets of a set of keywords. Keywords without a profile have no listings at all.

    Generated hours and query windows are cached; not thread-safe (the server uses it from its
    one event loop).
    """

    def __init__(
        self,
        profiles: Iterable[KeywordProfile],
        seed: int,
        horizon_hours: int = DEFAULT_HORIZON_HOURS,
        max_cached_listings: int = 3_000_000,
        max_cached_windows: int = 8,
        max_cached_descriptions: int = 100_000,
        realism: Realism = REALISTIC,
        sold_count_origin: int | None = None,
    ) -> None:
        """The caches are bounded in listings (~80 bytes each) for generated hours, and in
        count for query windows (a window holds every listing visible within one hour).

        ``sold_count_origin`` (unix seconds): the sold search's count keeps every sold listing
        created since then, also those older than the horizon that it no longer serves, as
        Mercari's count keeps years of sales. Without it the count forgets them at the horizon.
        """
        if horizon_hours < 1:
            raise ValueError("horizon_hours must be at least 1")
        self.horizon_hours = horizon_hours
        self.realism = realism
        self._sold_count_origin_hour = None if sold_count_origin is None else sold_count_origin // HOUR
        # Per (keyword, hour older than the horizon): sold listings never deleted, and the
        # deletion times of the others, sorted; per (keyword, oldest served hour) their sums.
        self._aged_hours: dict[tuple[str, int], tuple[int, np.ndarray]] = {}
        self._aged_totals: OrderedDict[tuple[str, int], tuple[int, np.ndarray]] = OrderedDict()
        self._profiles = {normalize_keyword(p.keyword): p for p in profiles}
        self._entropy = {key: _keyword_entropy(seed, key) for key in self._profiles}
        self._hours: OrderedDict[tuple[str, int], _Listings] = OrderedDict()
        self._cached_listings = 0
        self._max_cached_listings = max_cached_listings
        self._windows: OrderedDict[tuple[str, int], _Listings] = OrderedDict()
        self._max_cached_windows = max_cached_windows
        # A listing's description is drawn from its identity alone; successive searches show
        # mostly the same listings, and drawing them again dominated the cost of a page.
        self._descriptions: OrderedDict[tuple[str, int], tuple[Listing, str]] = OrderedDict()
        self._max_cached_descriptions = max_cached_descriptions

    @property
    def horizon_seconds(self) -> int:
        return self.horizon_hours * HOUR

    @property
    def profiles(self) -> tuple[KeywordProfile, ...]:
        return tuple(self._profiles.values())

    def profile(self, keyword: str) -> KeywordProfile | None:
        return self._profiles.get(normalize_keyword(keyword))

    def search(
        self,
        keyword: str,
        as_of: int,
        statuses: frozenset[ItemStatus] = ALL_STATUSES,
        page: int = 0,
        page_size: int = PAGE_SIZE,
    ) -> SearchPage:
        """A page of what Mercari's search shows at ``as_of``: newest created first, whatever
        the status (so an old listing that sells now sorts far down the sold results)."""
        if page < 0 or page_size < 1:
            raise ValueError("page cannot be negative and page_size must be positive")
        key = normalize_keyword(keyword)
        if key not in self._profiles:
            return SearchPage(listings=(), page=page, page_size=page_size, num_found=0)
        statuses = statuses or ALL_STATUSES
        window = self._window(key, as_of)
        realism = self.realism
        matches = np.flatnonzero(
            window.status_mask(as_of, self.horizon_seconds, statuses, realism.index_delay_seconds)
        )
        if realism.edit_probability:
            matches = matches[np.argsort(-window.sort_key(as_of)[matches], kind="stable")]
        # Filtered listings keep their slots: a full page serves fewer than page_size.
        slots = matches[page * page_size : (page + 1) * page_size]
        chosen = slots[~window.hidden[slots]]
        listings = tuple(self._listing(key, window, int(i), as_of) for i in chosen)
        counted = len(matches)
        if statuses & SOLD_STATUSES and self._sold_count_origin_hour is not None:
            counted += self._aged_sold_count(key, as_of, statuses)
        # Small counts are exact: the whole count, sales beyond the horizon included.
        if counted <= realism.exact_count_up_to:
            counted -= int(np.count_nonzero(window.hidden[matches]))
        return SearchPage(listings=listings, page=page, page_size=page_size, num_found=counted)

    def _aged_sold_count(self, key: str, as_of: int, statuses: frozenset[ItemStatus]) -> int:
        """Sold listings created between the origin and the horizon, not deleted by ``as_of``:
        all of them sold out long ago, so they count as SOLD_OUT."""
        if ItemStatus.SOLD_OUT not in statuses:
            return 0
        oldest_served = (as_of - self.horizon_seconds) // HOUR
        if oldest_served < self._sold_count_origin_hour:
            return 0
        totals = self._aged_totals.get((key, oldest_served))
        if totals is None:
            never, deletions = 0, []
            for hour in range(self._sold_count_origin_hour, oldest_served + 1):
                kept, deleted_at = self._aged_hour(key, hour)
                never += kept
                deletions.append(deleted_at)
            totals = (never, np.sort(np.concatenate(deletions)) if deletions else np.zeros(0, dtype=np.int64))
            self._aged_totals[(key, oldest_served)] = totals
            if len(self._aged_totals) > self._max_cached_windows * 4:
                self._aged_totals.popitem(last=False)
        never, deleted_at = totals
        # The newest of these hours is partly still served: count only what the window is not.
        cut = as_of - self.horizon_seconds
        listings = self._hour(key, oldest_served)
        gone = (listings.sold_out_at <= as_of) & (listings.deleted_at <= as_of)
        served_sold = int(np.count_nonzero((listings.created > cut) & (listings.sale_at <= as_of) & ~gone))
        return never + int(len(deleted_at) - np.searchsorted(deleted_at, as_of, side="right")) - served_sold

    def _aged_hour(self, key: str, hour: int) -> tuple[int, np.ndarray]:
        cached = self._aged_hours.get((key, hour))
        if cached is None:
            listings = self._hour(key, hour)
            sold = listings.sold_out_at != NEVER
            deleted_at = listings.deleted_at[sold]
            cached = (int(np.count_nonzero(deleted_at == NEVER)), np.sort(deleted_at[deleted_at != NEVER]))
            self._aged_hours[(key, hour)] = cached
        return cached

    def truth(self, keyword: str, start: int, end: int) -> list[HourTruth]:
        """Per hour of [start, end) (whole unix hours covering it): listings created, sold and
        withdrawn. The yardstick a crawler's inflow and outflow are measured against."""
        first_hour, last_hour = start // HOUR, -(-end // HOUR)
        span = last_hour - first_hour
        if span <= 0:
            return []
        created = np.zeros(span, dtype=np.int64)
        sold = np.zeros(span, dtype=np.int64)
        withdrawn = np.zeros(span, dtype=np.int64)
        for hour, listings in self._listings_with_events_in(keyword, first_hour, last_hour):
            if first_hour <= hour:
                created[hour - first_hour] = len(listings)
            for events, counts in ((listings.sale_at, sold), (listings.withdrawn_at, withdrawn)):
                event_hours = events[events != NEVER] // HOUR - first_hour
                in_span = event_hours[(event_hours >= 0) & (event_hours < span)]
                counts += np.bincount(in_span, minlength=span)
        return [
            HourTruth((first_hour + i) * HOUR, int(created[i]), int(sold[i]), int(withdrawn[i])) for i in range(span)
        ]

    def span_truth(self, keyword: str, start: int, end: int) -> tuple[int, int, int]:
        """Listings created, sold and withdrawn in exactly [start, end), to the second: the
        yardstick for the crawls between two moments that are not whole hours."""
        created = sold = withdrawn = 0
        for _, listings in self._listings_with_events_in(keyword, start // HOUR, -(-end // HOUR)):
            created += int(np.count_nonzero((listings.created >= start) & (listings.created < end)))
            sold += int(np.count_nonzero((listings.sale_at >= start) & (listings.sale_at < end)))
            withdrawn += int(np.count_nonzero((listings.withdrawn_at >= start) & (listings.withdrawn_at < end)))
        return created, sold, withdrawn

    def _listings_with_events_in(self, keyword: str, first_hour: int, last_hour: int):
        """(hour, listings created in it) for every hour whose listings can be created, sold or
        withdrawn in [first_hour, last_hour): sales and withdrawals come from listings up to a
        horizon older."""
        key = normalize_keyword(keyword)
        if key not in self._profiles:
            return
        for hour in range(first_hour - self.horizon_hours - 1, last_hour):
            yield hour, self._hour(key, hour)

    def listing_events(self, keyword: str, as_of: int) -> ListingEvents:
        """The event times of every listing the search can show at ``as_of``, whatever its status."""
        key = normalize_keyword(keyword)
        if key not in self._profiles:
            empty = np.zeros(0, dtype=np.int64)
            return ListingEvents(empty, empty, empty)
        window = self._window(key, as_of)
        visible = (window.created <= as_of) & (window.created > as_of - self.horizon_seconds)
        return ListingEvents(window.created[visible], window.sale_at[visible], window.withdrawn_at[visible])

    def _hour(self, key: str, hour: int) -> _Listings:
        cache_key = (key, hour)
        listings = self._hours.get(cache_key)
        if listings is None:
            listings = _generate_hour(self._profiles[key], self._entropy[key], hour, self.horizon_hours, self.realism)
            self._hours[cache_key] = listings
            self._cached_listings += len(listings)
            while self._cached_listings > self._max_cached_listings and len(self._hours) > 1:
                self._cached_listings -= len(self._hours.popitem(last=False)[1])
        else:
            self._hours.move_to_end(cache_key)
        return listings

    def _window(self, key: str, as_of: int) -> _Listings:
        """Every listing that can be visible during the hour holding ``as_of``, newest first."""
        newest_hour = as_of // HOUR
        cache_key = (key, newest_hour)
        window = self._windows.get(cache_key)
        if window is None:
            hours = range(newest_hour, newest_hour - self.horizon_hours - 2, -1)
            window = _Listings.concatenate([self._hour(key, hour) for hour in hours])
            self._windows[cache_key] = window
            if len(self._windows) > self._max_cached_windows:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(cache_key)
        return window

    def _listing(self, key: str, listings: _Listings, index: int, as_of: int) -> Listing:
        hour, serial = int(listings.hour[index]), int(listings.serial[index])
        created = int(listings.created[index])
        sale_at, sold_out_at = int(listings.sale_at[index]), int(listings.sold_out_at[index])
        on_sale, buyer_id = self._description(key, hour * MAX_LISTINGS_PER_HOUR + serial, created)
        edited_at = int(listings.edited_at[index])
        if edited_at <= as_of:
            cut = on_sale.price if on_sale.price == NO_PRICE else max(300, round(on_sale.price * self.realism.edit_price_factor, -1))
            on_sale = dataclasses.replace(on_sale, price=int(cut), updated=edited_at)
        if sale_at > as_of:
            return on_sale
        status = ItemStatus.SOLD_OUT if sold_out_at <= as_of else ItemStatus.TRADING
        updated = sold_out_at if status is ItemStatus.SOLD_OUT else sale_at
        if self.realism.transaction_updates:
            settled_at = int(listings.settled_at[index])
            latest = settled_at if settled_at <= as_of else updated
            updated = max(created, latest - latest % TRANSACTION_GRID_SECONDS)
        return dataclasses.replace(on_sale, status=status, updated=updated, buyer_id=buyer_id)

    def _description(self, key: str, identity: int, created: int) -> tuple[Listing, str]:
        """The listing as it shows while on sale, and the buyer it will have once sold."""
        cache_key = (key, identity)
        cached = self._descriptions.get(cache_key)
        if cached is not None:
            self._descriptions.move_to_end(cache_key)
            return cached
        profile = self._profiles[key]
        entropy = self._entropy[key]
        draws = _Draws(f"{entropy}:{identity}".encode())
        is_shop = draws.uniform() < profile.shop_fraction
        price = _draw_price(draws, profile)
        title = _draw_title(draws, profile.keyword)
        seller_id, buyer_id = str(draws.integer(10**8, 10**9 - 1)), str(draws.integer(10**8, 10**9 - 1))
        if is_shop:
            shop_digest = hashlib.blake2b(f"{entropy}:{identity}:shop".encode(), digest_size=17).digest()
            api_id = _base62(int.from_bytes(shop_digest, "big"), 22)
            source_id = f"shops_{api_id}"
        else:
            api_id = source_id = f"m{10**10 + (identity * _ID_MULTIPLIER + entropy[0]) % _ID_SPACE}"
        on_sale = Listing(
            source_id=source_id,
            api_id=api_id,
            title=title,
            price=price,
            status=ItemStatus.ON_SALE,
            created=created,
            updated=created,
            seller_id=seller_id,
            buyer_id="",
            is_shop=is_shop,
            item_condition_id=draws.integer(1, 6),
            shipping_payer_id=draws.choice((1, 2, 2, 2)),
            shipping_method_id=draws.choice(_SHIPPING_METHODS),
            category_id=draws.choice(_CATEGORIES),
            price_style=draws.integer(0, 2),
        )
        self._descriptions[cache_key] = (on_sale, buyer_id)
        if len(self._descriptions) > self._max_cached_descriptions:
            self._descriptions.popitem(last=False)
        return on_sale, buyer_id


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "".join(chars)
