// Numbers and times as the page shows them: Japan time, whatever the browser's zone.

const HOUR_MS = 3600 * 1000;
const JST = "Asia/Tokyo";
const integer = new Intl.NumberFormat("en-US");
const decimal = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const yen = new Intl.NumberFormat("ja-JP", { style: "currency", currency: "JPY" });
const parts = new Intl.DateTimeFormat("en-CA", {
  timeZone: JST, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  hourCycle: "h23",
});

export const HOUR = HOUR_MS;

export function missing(value) {
  return value === null || value === undefined || Number.isNaN(value);
}

export function count(value) {
  return missing(value) ? "—" : integer.format(value);
}

export function ratio(value) {
  return missing(value) ? "—" : decimal.format(value);
}

export function price(value) {
  return missing(value) ? "—" : yen.format(Math.round(value));
}

function fields(moment) {
  const out = {};
  for (const part of parts.formatToParts(new Date(moment))) out[part.type] = part.value;
  return out;
}

/** 2026-11-11 14:00 */
export function dateTime(moment) {
  if (missing(moment) || moment === "") return "—";
  const f = fields(moment);
  return `${f.year}-${f.month}-${f.day} ${f.hour}:${f.minute}`;
}

/** 11-11 */
export function day(moment) {
  const f = fields(moment);
  return `${f.month}-${f.day}`;
}

/** 14:00 */
export function clock(moment) {
  const f = fields(moment);
  return `${f.hour}:${f.minute}`;
}

/** The start of the hour (ms) that holds ``moment``; Japan has no daylight saving, so UTC hours are its hours. */
export function hourStart(moment) {
  return Math.floor(new Date(moment).getTime() / HOUR_MS) * HOUR_MS;
}

/** Milliseconds between now and then, as "in 1 h 20 min" / "5 min ago". */
export function relative(then, now) {
  const minutes = Math.round((new Date(then).getTime() - new Date(now).getTime()) / 60000);
  const size = Math.abs(minutes);
  const text = size >= 60 ? `${Math.floor(size / 60)} h ${size % 60} min` : `${size} min`;
  return minutes >= 0 ? `in ${text}` : `${text} ago`;
}

export const QUALITY_ORDER = ["exact", "counted", "estimated", "lower_bound"];
export const QUALITY_TEXT = {
  exact: "exact",
  counted: "counted",
  estimated: "estimated",
  lower_bound: "lower bound",
};
export const QUALITY_HELP = {
  exact: "every listing and sale of the hours was in a window the crawls read",
  counted: "from the search's result counts",
  estimated: "part extrapolated: more listings arrived than a crawl's on-sale pages hold",
  lower_bound: "part of the hours not observed (yet): at least these figures",
};

/** The least exact quality among rows (null when none says). */
export function worstQuality(rows) {
  let worst = -1;
  for (const row of rows) worst = Math.max(worst, QUALITY_ORDER.indexOf(row.quality));
  return worst < 0 ? null : QUALITY_ORDER[worst];
}

export const WINDOWS = [
  { hours: 2, label: "2 h" },
  { hours: 24, label: "24 h" },
  { hours: 168, label: "7 d" },
];
