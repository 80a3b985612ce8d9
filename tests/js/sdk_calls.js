// Runs SDK calls one after another from a JSON plan and prints what happened as JSON:
//   node sdk_calls.js '{"sdk": "/path/sophra-sdk.js", "client": {init options}, "calls": [["reportVitals", {...}], ...]}'
// Output: {"results": [{ok, value | error: {name, message, status, body}, startMs, endMs}],
//          "exchanges": [{method, url, startMs, endMs, status, retryAfter} | {..., networkError}]}
// `exchanges` comes from wrapping global fetch, so tests can see each HTTP attempt the
// SDK made (retries included) and the Retry-After it was given.
'use strict';
const { performance } = require('perf_hooks');

const plan = JSON.parse(process.argv[2]);
const exchanges = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, init) => {
  const entry = { method: init.method, url: String(url), startMs: performance.now() };
  exchanges.push(entry);
  try {
    const res = await realFetch(url, init);
    Object.assign(entry, { endMs: performance.now(), status: res.status, retryAfter: res.headers.get('Retry-After') });
    return res;
  } catch (err) {
    Object.assign(entry, { endMs: performance.now(), networkError: String(err && err.message) });
    throw err;
  }
};

const sophra = require(plan.sdk);
const client = plan.useDefault ? sophra.init(plan.client) : sophra.createClient(plan.client);

(async () => {
  const results = [];
  for (const [method, ...args] of plan.calls) {
    const startMs = performance.now();
    try {
      const value = await client[method](...args);
      results.push({ ok: true, value, startMs, endMs: performance.now() });
    } catch (err) {
      results.push({ ok: false, startMs, endMs: performance.now(),
                     error: { name: err.name, message: err.message, status: err.status, body: err.body } });
    }
  }
  process.stdout.write(JSON.stringify({ results, exchanges }) + '\n');
})();
