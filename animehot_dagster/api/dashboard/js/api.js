// The public API (SPEC §9) as the dashboard uses it: the envelope {code, message, data}, lists
// with total/page/page_size beside data. Paths are relative, so the dashboard works under a prefix.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export let requestCount = 0;

function url(path, params) {
  const target = new URL(path.replace(/^\//, ""), document.baseURI);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== "") target.searchParams.set(key, value);
  }
  return target;
}

async function send(path, { params, method = "GET", headers = {} } = {}) {
  requestCount += 1;
  let response;
  try {
    response = await fetch(url(path, params), { method, headers: { Accept: "application/json", ...headers } });
  } catch (error) {
    throw new ApiError(0, `the API cannot be reached (${error.message})`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(response.status, `not JSON from ${path} (HTTP ${response.status})`);
  }
  if (!response.ok || (body && typeof body.code === "number" && body.code !== 0)) {
    throw new ApiError(response.status, (body && body.message) || `HTTP ${response.status}`);
  }
  return body;
}

/** The envelope's data. */
export async function get(path, params) {
  return (await send(path, { params })).data;
}

/** A list: {data: [...], total, page, page_size}. */
export async function list(path, params) {
  return send(path, { params });
}

export async function health() {
  return send("/health");
}

export async function post(path, headers) {
  return (await send(path, { method: "POST", headers })).data;
}

/** The value of a promise, or the error it failed with (one failed panel must not blank a page). */
export function settle(promise) {
  return promise.then((value) => ({ value }), (error) => ({ error }));
}
