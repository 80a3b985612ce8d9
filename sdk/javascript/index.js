// @sophonz/sdk: a client of the Sophonz / Sophra application-monitoring API (/v1).
// Zero dependencies: global fetch (Node.js 18+, browsers, Deno, Bun). No Node-only imports.
//
//   import { Sophonz } from '@sophonz/sdk';
//   const client = new Sophonz({ apiKey: 'your-api-key' });
//   const apps = await client.applications.list();

export const VERSION = '0.1.0';
// A self-hosted server on this machine; the hosted one is https://api.sophonz.com/v1.
export const DEFAULT_BASE_URL = 'http://127.0.0.1:8000/v1';

const STATUS_TEXT = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  409: 'Conflict', 413: 'Payload Too Large', 429: 'Too Many Requests', 500: 'Internal Server Error',
  502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

/** Every failed request: a non-2xx answer (status = HTTP status) or no answer (status 0). */
export class SophonzError extends Error {
  constructor({ status, error, message, field = null, retryAfter = null, body = null }) {
    super(message);
    this.name = 'SophonzError';
    this.status = status;
    this.error = error;
    this.field = field;
    this.retryAfter = retryAfter;
    this.body = body;
  }

  /** The same as retryAfter, spelled as in the Python SDK. */
  get retry_after() {
    return this.retryAfter;
  }
}

function env(name) {
  // `process` only exists in Node-like runtimes; in a browser there is no environment.
  try {
    if (typeof process !== 'undefined' && process && process.env) return process.env[name] || undefined;
  } catch {
    // a sandbox that forbids reading the environment
  }
  return undefined;
}

const seg = (value) => encodeURIComponent(String(value));

function queryValue(value) {
  return value instanceof Date ? value.toISOString() : String(value);
}

function headerNumber(value) {
  if (value === null || value === undefined) return null;
  const text = String(value).trim();
  return /^-?\d+$/.test(text) ? Number(text) : text; // "unlimited" for enterprise keys
}

function parseRetryAfter(value) {
  if (value === null || value === undefined) return null;
  const text = String(value).trim();
  if (/^\d+$/.test(text)) return Number(text);
  const when = Date.parse(text); // an HTTP date
  return Number.isNaN(when) ? null : Math.max(0, Math.ceil((when - Date.now()) / 1000));
}

export class Sophonz {
  /**
   * @param {{apiKey?: string, baseUrl?: string, timeoutMs?: number, fetch?: typeof fetch}} [options]
   *   apiKey: default SOPHONZ_API_KEY; baseUrl (including /v1): default SOPHONZ_BASE_URL, else
   *   http://127.0.0.1:8000/v1; timeoutMs: default 10000.
   */
  constructor(options = {}) {
    const apiKey = options.apiKey || env('SOPHONZ_API_KEY');
    if (!apiKey) throw new TypeError('No API key: pass new Sophonz({ apiKey }) or set SOPHONZ_API_KEY');
    const fetchImpl = options.fetch || globalThis.fetch;
    if (typeof fetchImpl !== 'function') throw new TypeError('No global fetch: use Node.js 18+ or pass options.fetch');
    this.baseUrl = String(options.baseUrl || env('SOPHONZ_BASE_URL') || DEFAULT_BASE_URL).replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 10000;
    /** The quota of the last answer that carried it: {limit, remaining, reset}, or null. */
    this.rateLimit = null;
    Object.defineProperty(this, 'apiKey', { value: apiKey, enumerable: false });
    Object.defineProperty(this, '_fetch', { value: fetchImpl, enumerable: false });

    const c = this;
    this.applications = {
      list: (params = {}) => c.request('GET', '/applications', {
        query: { page: params.page, per_page: params.perPage ?? params.per_page },
      }),
      get: (id) => c.request('GET', `/applications/${seg(id)}`),
      create: (body) => c.request('POST', '/applications', { body }),
      update: (id, fields) => c.request('PATCH', `/applications/${seg(id)}`, { body: fields }),
      delete: (id) => c.request('DELETE', `/applications/${seg(id)}`),
    };
    this.metrics = {
      get: (appId, params = {}) => c.request('GET', `/applications/${seg(appId)}/metrics`, {
        query: { metric: params.metric, start: params.start, end: params.end,
                 granularity: params.granularity, stat: params.stat },
      }),
      send: (appId, points) => c.request('POST', `/applications/${seg(appId)}/metrics`,
        { body: { points: Array.from(points) } }),
    };
    this.alerts = {
      create: (appId, body) => c.request('POST', `/applications/${seg(appId)}/alerts`, { body }),
      list: (appId) => c.request('GET', `/applications/${seg(appId)}/alerts`),
      delete: (appId, alertId) => c.request('DELETE', `/applications/${seg(appId)}/alerts/${seg(alertId)}`),
    };
    this.deployments = {
      create: (appId, body) => c.request('POST', `/applications/${seg(appId)}/deployments`,
        { body }),
      list: (appId) => c.request('GET', `/applications/${seg(appId)}/deployments`),
    };
    this.insights = {
      list: (appId) => c.request('GET', `/applications/${seg(appId)}/insights`),
    };
    this.predictions = {
      get: (appId, params = {}) => c.request('GET', `/applications/${seg(appId)}/predictions`, {
        query: { metric: params.metric, horizon: params.horizon },
      }),
    };
  }

  /**
   * One request to baseUrl + path; resolves to the parsed JSON answer (null when empty, e.g. 204).
   * Query values that are undefined or null are left out; Dates become ISO 8601 UTC strings.
   * Rejects with SophonzError on any non-2xx answer and on network failure or timeout (status 0).
   */
  async request(method, path, { query, body } = {}) {
    let url = this.baseUrl + path;
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null) params.append(k, queryValue(v));
    const qs = params.toString();
    if (qs) url += `?${qs}`;

    const headers = { Authorization: `Bearer ${this.apiKey}`, Accept: 'application/json' };
    const init = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body); // Dates become ISO 8601 UTC strings
    }
    const controller = typeof AbortController === 'function' ? new AbortController() : null;
    if (controller) init.signal = controller.signal;
    let timedOut = false;
    const timer = controller && this.timeoutMs > 0
      ? setTimeout(() => { timedOut = true; controller.abort(); }, this.timeoutMs) : null;

    let res;
    let text;
    try {
      res = await this._fetch(url, init);
      text = await res.text();
    } catch (cause) {
      // Node's fetch says "fetch failed" and keeps the reason (ECONNREFUSED, ...) in .cause
      const reason = cause && cause.cause ? cause.cause.message || String(cause.cause) : String(cause);
      const err = timedOut
        ? new SophonzError({ status: 0, error: 'Timeout', message: `No answer from ${url} within ${this.timeoutMs} ms` })
        : new SophonzError({ status: 0, error: 'Network error', message: `Cannot reach ${url}: ${reason}` });
      err.cause = cause;
      throw err;
    } finally {
      if (timer) clearTimeout(timer);
    }

    const limit = res.headers.get('X-RateLimit-Limit');
    if (limit !== null) {
      this.rateLimit = {
        limit: headerNumber(limit),
        remaining: headerNumber(res.headers.get('X-RateLimit-Remaining')),
        reset: headerNumber(res.headers.get('X-RateLimit-Reset')),
      };
    }
    let parsed = null;
    if (text.trim()) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (res.ok) return parsed;

    const e = parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? parsed : {};
    let retryAfter = parseRetryAfter(res.headers.get('Retry-After'));
    if (retryAfter === null && Number.isInteger(e.retry_after_seconds)) retryAfter = e.retry_after_seconds;
    throw new SophonzError({
      status: res.status,
      error: String(e.error || res.statusText || STATUS_TEXT[res.status] || 'HTTP error'),
      message: String(e.message || (typeof parsed === 'string' ? parsed.trim().slice(0, 500) : '')
        || `${method} ${path} answered ${res.status}`),
      field: e.field ?? null,
      retryAfter,
      body: parsed,
    });
  }
}

export default Sophonz;
