/*!
 * Sophra SDK - report AI agent vitals and events to a Sophra server.
 * One zero-dependency file for Node.js 18+ and browsers (needs global fetch).
 *
 *   Node:    const sophra = require('./sophra-sdk'); sophra.init({ apiKey: process.env.SOPHRA_API_KEY });
 *   Browser: <script src="https://your-sophra-server/sdk/sophra-sdk.js"></script> -> window.Sophra
 */
(function (root, factory) {
  // UMD without AMD: CommonJS when there is a `module`, otherwise a global.
  if (typeof module === 'object' && module && module.exports) {
    module.exports = factory(root);
  } else {
    root.Sophra = factory(root);
  }
})(typeof globalThis !== 'undefined' ? globalThis : typeof self !== 'undefined' ? self : this, function (root) {
  'use strict';

  var VERSION = '0.1.0';
  var NODE_DEFAULT_BASE_URL = 'http://127.0.0.1:8000';
  var DEFAULT_TIMEOUT_MS = 10000;
  var DEFAULT_MAX_RETRY_MS = 30000;
  var BACKOFF_BASE_MS = 500;
  var BACKOFF_CAP_MS = 8000;
  // Spread added on top of a server-mandated wait, so clients told the same
  // Retry-After do not all come back in the same millisecond.
  var RETRY_AFTER_SPREAD_MS = 250;
  // Only failures where trying again can help. Other 4xx mean the request itself is
  // wrong (bad payload, bad key); 500 may already have stored the record.
  var RETRYABLE_STATUS = { 429: true, 502: true, 503: true, 504: true };
  // Percent of a token budget used at which onBudget is called (crossing upward).
  var DEFAULT_BUDGET_THRESHOLDS = [80, 100];

  // document.currentScript is only set while this file is first executing, so the
  // browser default (the server that served this script) must be captured now.
  var scriptOrigin = (function () {
    try {
      var script = typeof document !== 'undefined' && document.currentScript;
      if (script && script.src) return new URL(script.src).origin;
    } catch (e) { /* not a browser, or an unparsable src: fall through */ }
    return null;
  })();

  function isNode() {
    return typeof process !== 'undefined' && !!(process.versions && process.versions.node);
  }

  function defaultBaseUrl() {
    if (scriptOrigin) return scriptOrigin;
    if (isNode()) return (process.env && process.env.SOPHRA_BASE_URL) || NODE_DEFAULT_BASE_URL;
    // Bundled into a page without a <script src> of its own: assume same-origin server.
    if (root.location && root.location.origin && root.location.origin !== 'null') return root.location.origin;
    return NODE_DEFAULT_BASE_URL;
  }

  // Every rejection is a SophraError: `status` is the HTTP status (0 when no response
  // arrived), `body` the server's parsed JSON (text if not JSON, else null).
  class SophraError extends Error {
    constructor(message, status, body, cause) {
      super(message);
      this.status = status;
      this.body = body;
      if (cause) this.cause = cause;
    }
  }
  SophraError.prototype.name = 'SophraError';

  function sophraError(message, status, body, cause) {
    return new SophraError(message, status, body, cause);
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function positiveNumber(value, name, allowZero) {
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !isFinite(value) || value < 0 || (!allowZero && value === 0)) {
      throw new TypeError('[sophra] ' + name + ' must be a ' + (allowZero ? 'non-negative' : 'positive') + ' number');
    }
    return value;
  }

  // Minimum wait the server asked for, in ms: the larger of the Retry-After header
  // (seconds or an HTTP date) and the body's retry_after_ms. null when neither is given.
  function retryAfterMs(headers, body) {
    var waits = [];
    var header = headers && headers.get('Retry-After');
    if (header) {
      var seconds = Number(header);
      if (isFinite(seconds)) waits.push(Math.max(0, seconds * 1000));
      else if (!isNaN(Date.parse(header))) waits.push(Math.max(0, Date.parse(header) - Date.now()));
    }
    if (body && typeof body === 'object' && typeof body.retry_after_ms === 'number' && isFinite(body.retry_after_ms)) {
      waits.push(Math.max(0, body.retry_after_ms));
    }
    return waits.length ? Math.max.apply(null, waits) : null;
  }

  function parseBody(text) {
    if (!text) return null;
    try { return JSON.parse(text); } catch (e) { return text; }
  }

  function createClient(options) {
    var config = null;

    function init(opts) {
      opts = opts || {};
      if (opts.baseUrl !== undefined && typeof opts.baseUrl !== 'string') {
        throw new TypeError('[sophra] baseUrl must be a string');
      }
      if (opts.fetch !== undefined && typeof opts.fetch !== 'function') {
        throw new TypeError('[sophra] fetch must be a function');
      }
      if (opts.onBudget !== undefined && typeof opts.onBudget !== 'function') {
        throw new TypeError('[sophra] onBudget must be a function');
      }
      var thresholds = opts.budgetThresholds === undefined ? DEFAULT_BUDGET_THRESHOLDS : opts.budgetThresholds;
      if (!Array.isArray(thresholds)) throw new TypeError('[sophra] budgetThresholds must be an array of percents');
      thresholds = thresholds.map(function (t) { return positiveNumber(t, 'budgetThresholds[]', false); })
        .sort(function (a, b) { return a - b; });
      config = {
        // A missing key is not thrown here: an agent must not crash at start-up because
        // monitoring is misconfigured. Each call rejects instead (see request()).
        apiKey: opts.apiKey,
        baseUrl: (opts.baseUrl || defaultBaseUrl()).replace(/\/+$/, ''),
        timeoutMs: positiveNumber(opts.timeoutMs, 'timeoutMs', false) || DEFAULT_TIMEOUT_MS,
        maxRetryMs: opts.maxRetryMs === undefined ? DEFAULT_MAX_RETRY_MS : positiveNumber(opts.maxRetryMs, 'maxRetryMs', true),
        fetch: opts.fetch || null,
        onBudget: opts.onBudget || null,
        budgetThresholds: thresholds
      };
      return client;
    }

    // One HTTP exchange. Resolves {status, headers, body} for any response; rejects
    // only when no response arrived (network error or timeout).
    function attempt(fetchImpl, method, url, payload) {
      var headers = { 'Authorization': 'Bearer ' + config.apiKey, 'Accept': 'application/json' };
      if (payload !== undefined) headers['Content-Type'] = 'application/json';
      var controller = typeof AbortController === 'function' ? new AbortController() : null;
      // The timer covers the whole exchange, body included, and is always cleared so
      // it never keeps a Node process alive.
      var timer = controller ? setTimeout(function () { controller.abort(); }, config.timeoutMs) : null;
      return Promise.resolve()
        .then(function () {
          return fetchImpl(url, {
            method: method,
            headers: headers,
            body: payload === undefined ? undefined : JSON.stringify(payload),
            signal: controller ? controller.signal : undefined
          });
        })
        .then(function (res) {
          return res.text().then(function (text) {
            return { status: res.status, headers: res.headers, body: parseBody(text) };
          });
        })
        .then(function (result) {
          clearTimeout(timer);
          return result;
        }, function (error) {
          clearTimeout(timer);
          var timedOut = controller && controller.signal.aborted;
          throw sophraError(
            timedOut ? '[sophra] request timed out after ' + config.timeoutMs + ' ms'
              : '[sophra] network error: ' + (error && error.message ? error.message : String(error)),
            0, null, error);
        });
    }

    // Retries with exponential backoff and full jitter, never waiting less than the
    // server's Retry-After, and never starting a retry later than maxRetryMs after the
    // first attempt. Network-error retries of a POST can duplicate a record the server
    // did receive; for monitoring data that beats losing it.
    function request(method, path, payload) {
      if (!config) return Promise.reject(sophraError('[sophra] call init({ apiKey }) first', 0, null));
      if (!config.apiKey || typeof config.apiKey !== 'string') {
        return Promise.reject(sophraError('[sophra] no apiKey: call init({ apiKey: process.env.SOPHRA_API_KEY })', 0, null));
      }
      var fetchImpl = config.fetch || (typeof root.fetch === 'function' ? root.fetch.bind(root) : null);
      if (!fetchImpl) {
        return Promise.reject(sophraError('[sophra] no global fetch: use Node.js 18+ or pass init({ fetch })', 0, null));
      }
      var url = config.baseUrl + path;
      var deadline = Date.now() + config.maxRetryMs;
      var tries = 0;

      function next() {
        return attempt(fetchImpl, method, url, payload).then(function (res) {
          if (res.status >= 200 && res.status < 300) return res.body;
          var body = res.body;
          var message = (body && typeof body === 'object' && (body.message || body.error)) || ('HTTP ' + res.status);
          var err = sophraError(message, res.status, body);
          if (!RETRYABLE_STATUS[res.status]) throw err;
          return retryOrFail(err, retryAfterMs(res.headers, body));
        }, function (networkError) {
          return retryOrFail(networkError, null);
        });
      }

      function retryOrFail(err, minimumMs) {
        var exponential = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * Math.pow(2, tries));
        var wait = Math.random() * exponential;
        var remaining = deadline - Date.now();
        if (minimumMs !== null) {
          // The server said when it will accept us; if that is past the budget, give up
          // now instead of sleeping only to be refused again.
          if (minimumMs > remaining) throw err;
          wait = Math.max(wait, minimumMs + Math.random() * RETRY_AFTER_SPREAD_MS);
          wait = Math.max(minimumMs, Math.min(wait, remaining));
        } else {
          if (remaining <= 0) throw err;
          wait = Math.min(wait, remaining);
        }
        tries += 1;
        return sleep(wait).then(next);
      }

      return next();
    }

    // The throttle signal: the `budget` of each agent's latest vitals answer (absent when
    // no token budget covers the agent), and onBudget(agentId, threshold, budget) when its
    // percent_used crosses a threshold upward. A throwing onBudget does not fail the report.
    var budgets = {};

    function noteBudget(agentId, answer) {
      var budget = answer && typeof answer === 'object' && answer.budget ? answer.budget : null;
      var before = Object.prototype.hasOwnProperty.call(budgets, agentId) ? budgets[agentId] : null;
      budgets[agentId] = budget;
      if (!budget || !config.onBudget) return;
      // a new period (or another budget becoming the tightest) starts again from 0
      var was = before && before.id === budget.id ? before.percent_used : 0;
      config.budgetThresholds.forEach(function (t) {
        if (was < t && t <= budget.percent_used) {
          try { config.onBudget(agentId, t, budget); } catch (e) { /* the user's function: not ours to report */ }
        }
      });
    }

    function agentPath(agentId, suffix) {
      return '/api/agents/' + encodeURIComponent(String(agentId)) + suffix;
    }

    var client = {
      version: VERSION,
      init: init,
      // Body as the API documents it: {agentId, agentName?, metrics?, metadata?}; it is
      // sent unchanged so fields the server learns later need no SDK update.
      reportVitals: function (vitals) {
        return request('POST', '/api/vitals', vitals || {}).then(function (answer) {
          if (vitals && typeof vitals.agentId === 'string') noteBudget(vitals.agentId, answer);
          return answer;
        });
      },
      // The budget state of the agent's latest vitals answer ({id, remaining, percent_used,
      // exhausted, forecast_exhaustion_at, as_of}); null before it or when no budget covers
      // the agent. No request: it is what the server last said.
      budget: function (agentId) {
        return Object.prototype.hasOwnProperty.call(budgets, agentId) ? budgets[agentId] : null;
      },
      // {agentId, type, details?, metadata?}
      reportEvent: function (event) { return request('POST', '/api/events', event || {}); },
      getAgents: function () { return request('GET', '/api/agents'); },
      getVitals: function (agentId, opts) {
        var query = opts && opts.limit !== undefined ? '?limit=' + encodeURIComponent(String(opts.limit)) : '';
        return request('GET', agentPath(agentId, '/vitals' + query));
      },
      getAri: function (agentId) { return request('GET', agentPath(agentId, '/ari')); }
    };

    if (options) init(options);
    return client;
  }

  // The module itself is a client (the default instance), plus the factory.
  var sdk = createClient();
  sdk.createClient = createClient;
  sdk.SophraError = SophraError;
  return sdk;
});
