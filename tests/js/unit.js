// SDK behaviour with a scripted fake fetch (no server): URLs, headers, bodies, which
// failures are retried, Retry-After as a minimum wait, the give-up bound, timeouts,
// independent clients, base URL defaults, and silence on the console.
//   node unit.js /path/to/sophra-sdk.js      -> prints "ok <n> checks" or exits 1
'use strict';
const assert = require('assert');
const sdkPath = require('path').resolve(process.argv[2]);

const consoleUse = [];
for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
  console[level] = (...args) => consoleUse.push([level, args]);
}

function json(status, body, headers) {
  return new Response(body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body),
    { status, headers: { 'Content-Type': 'application/json', ...(headers || {}) } });
}

// A fetch that answers from a script of responses (a Response, an Error to throw, or a
// function of the request) and records every request with its time.
function fakeFetch(script) {
  const requests = [];
  const fetch = async (url, init) => {
    const request = { url, method: init.method, headers: init.headers, body: init.body, at: Date.now(), signal: init.signal };
    requests.push(request);
    let step = script.length > 1 ? script.shift() : script[0];
    if (typeof step === 'function') step = await step(request);
    if (step instanceof Error) throw step;
    return step.clone ? step.clone() : step;
  };
  return { fetch, requests };
}

function client(script, options) {
  const fake = fakeFetch(script);
  const sophra = require(sdkPath);
  return { sophra: sophra.createClient({ apiKey: 'sk_live_unit', baseUrl: 'http://sophra.test/', fetch: fake.fetch, ...options }), requests: fake.requests };
}

async function rejection(promise) {
  try { await promise; } catch (err) { return err; }
  assert.fail('expected a rejection');
}

const checks = [];
const check = (name, fn) => checks.push([name, fn]);

check('requests: urls, methods, headers, bodies, parsed results', async () => {
  const { sophra, requests } = client([json(200, { success: true, n: 1 })]);
  assert.deepStrictEqual(await sophra.reportVitals({ agentId: 'a', metrics: { loopCount: 1, extra: 'x' } }), { success: true, n: 1 });
  await sophra.reportEvent({ agentId: 'a', type: 'tool_error' });
  await sophra.getAgents();
  await sophra.getVitals('a b/c', { limit: 5 });
  await sophra.getVitals('x');
  await sophra.getAri('x');
  assert.deepStrictEqual(requests.map((r) => [r.method, r.url, r.body]), [
    ['POST', 'http://sophra.test/api/vitals', '{"agentId":"a","metrics":{"loopCount":1,"extra":"x"}}'],
    ['POST', 'http://sophra.test/api/events', '{"agentId":"a","type":"tool_error"}'],
    ['GET', 'http://sophra.test/api/agents', undefined],
    ['GET', 'http://sophra.test/api/agents/a%20b%2Fc/vitals?limit=5', undefined],
    ['GET', 'http://sophra.test/api/agents/x/vitals', undefined],
    ['GET', 'http://sophra.test/api/agents/x/ari', undefined],
  ]);
  assert.deepStrictEqual(requests[0].headers, { 'Authorization': 'Bearer sk_live_unit', 'Accept': 'application/json', 'Content-Type': 'application/json' });
  assert.deepStrictEqual(requests[2].headers, { 'Authorization': 'Bearer sk_live_unit', 'Accept': 'application/json' });
});

for (const status of [400, 401, 403, 404, 409, 422, 500]) {
  check(`HTTP ${status} rejects at once with the server's message, status and body`, async () => {
    const body = { success: false, error: 'Nope', message: `server says ${status}` };
    const { sophra, requests } = client([json(status, body)]);
    const err = await rejection(sophra.reportVitals({ agentId: 'a' }));
    assert.strictEqual(requests.length, 1);
    assert.ok(err instanceof Error && err instanceof require(sdkPath).SophraError);
    assert.deepStrictEqual([err.name, err.message, err.status, err.body], ['SophraError', `server says ${status}`, status, body]);
  });
}

for (const failure of [502, 503, 504, 'network']) {
  check(`${failure} is retried until it succeeds`, async () => {
    const first = failure === 'network' ? new TypeError('fetch failed') : json(failure, { success: false, error: 'Busy', message: 'busy' });
    const { sophra, requests } = client([first, first, json(200, { success: true })]);
    assert.deepStrictEqual(await sophra.reportVitals({ agentId: 'a' }), { success: true });
    assert.strictEqual(requests.length, 3);
    assert.deepStrictEqual(new Set(requests.map((r) => r.body)).size, 1);
  });
}

check('Retry-After (seconds) is the minimum wait before the retry', async () => {
  const { sophra, requests } = client([json(429, { success: false, error: 'Rate limit exceeded' }, { 'Retry-After': '1' }), json(200, { success: true })]);
  await sophra.reportVitals({ agentId: 'a' });
  assert.strictEqual(requests.length, 2);
  assert.ok(requests[1].at - requests[0].at >= 1000, `retried after ${requests[1].at - requests[0].at} ms`);
});

check("the body's retry_after_ms counts when it is the longer wait", async () => {
  const limited = json(429, { success: false, error: 'Rate limit exceeded', retry_after_ms: 1300, retry_after_seconds: 2 }, { 'Retry-After': '1' });
  const { sophra, requests } = client([limited, json(200, { success: true })]);
  await sophra.reportVitals({ agentId: 'a' });
  assert.ok(requests[1].at - requests[0].at >= 1300, `retried after ${requests[1].at - requests[0].at} ms`);
});

check('a 503 with Retry-After: 0 retries promptly', async () => {
  const { sophra, requests } = client([json(503, { success: false }, { 'Retry-After': '0' }), json(200, { success: true })]);
  await sophra.reportVitals({ agentId: 'a' });
  assert.ok(requests[1].at - requests[0].at < 900);
});

check('a Retry-After beyond maxRetryMs gives up at once with the 429', async () => {
  const body = { success: false, error: 'Rate limit exceeded', message: 'slow down', retry_after_ms: 9000, retry_after_seconds: 9 };
  const { sophra, requests } = client([json(429, body, { 'Retry-After': '9' })], { maxRetryMs: 1000 });
  const started = Date.now();
  const err = await rejection(sophra.reportVitals({ agentId: 'a' }));
  assert.deepStrictEqual([err.status, err.body, err.message, requests.length], [429, body, 'slow down', 1]);
  assert.ok(Date.now() - started < 500);
});

check('retries stop at maxRetryMs', async () => {
  const { sophra, requests } = client([json(503, 'upstream down')], { maxRetryMs: 700 });
  const started = Date.now();
  const err = await rejection(sophra.getAgents());
  const took = Date.now() - started;
  assert.ok(took >= 600 && took < 1500, `gave up after ${took} ms`);
  assert.ok(requests.length >= 2, `${requests.length} attempts`);
  assert.deepStrictEqual([err.status, err.body, err.message], [503, 'upstream down', 'HTTP 503']);
});

check('maxRetryMs: 0 means a single attempt', async () => {
  const { sophra, requests } = client([new TypeError('fetch failed')], { maxRetryMs: 0 });
  const err = await rejection(sophra.getAgents());
  assert.strictEqual(requests.length, 1);
  assert.deepStrictEqual([err.status, err.body, err.message], [0, null, '[sophra] network error: fetch failed']);
  assert.ok(err.cause instanceof TypeError);
});

check('each request is aborted after timeoutMs', async () => {
  const hang = (request) => new Promise((_, reject) => request.signal.addEventListener('abort', () => reject(new Error('aborted'))));
  const { sophra } = client([hang], { timeoutMs: 100, maxRetryMs: 0 });
  const started = Date.now();
  const err = await rejection(sophra.reportVitals({ agentId: 'a' }));
  assert.ok(Date.now() - started >= 90 && Date.now() - started < 1000);
  assert.deepStrictEqual([err.status, err.message], [0, '[sophra] request timed out after 100 ms']);
});

check('clients are independent; the default instance needs init first', async () => {
  const sophra = require(sdkPath);
  const err = await rejection(sophra.reportVitals({ agentId: 'a' }));
  assert.match(err.message, /init/);
  const a = fakeFetch([json(200, { success: true })]);
  const b = fakeFetch([json(200, { success: true })]);
  const one = sophra.createClient({ apiKey: 'sk_live_one', baseUrl: 'http://one.test', fetch: a.fetch });
  const two = sophra.createClient({ apiKey: 'sk_live_two', baseUrl: 'http://two.test', fetch: b.fetch });
  await one.getAgents();
  await two.getAgents();
  assert.deepStrictEqual([a.requests[0].url, a.requests[0].headers.Authorization], ['http://one.test/api/agents', 'Bearer sk_live_one']);
  assert.deepStrictEqual([b.requests[0].url, b.requests[0].headers.Authorization], ['http://two.test/api/agents', 'Bearer sk_live_two']);
  sophra.init({ apiKey: 'sk_live_default', baseUrl: 'http://default.test', fetch: a.fetch });
  const { reportVitals } = sophra; // module functions work detached
  await reportVitals({ agentId: 'a' });
  assert.deepStrictEqual([a.requests[1].url, a.requests[1].headers.Authorization], ['http://default.test/api/vitals', 'Bearer sk_live_default']);
});

check('a missing apiKey rejects without a request', async () => {
  const { sophra, requests } = client([json(200, {})], { apiKey: undefined });
  const err = await rejection(sophra.getAgents());
  assert.match(err.message, /apiKey/);
  assert.strictEqual(requests.length, 0);
});

check('without any fetch, calls reject at once (no retrying)', async () => {
  const sophra = require(sdkPath);
  const saved = globalThis.fetch;
  delete globalThis.fetch;
  const started = Date.now();
  let promise;
  try { promise = sophra.createClient({ apiKey: 'sk_live_x', baseUrl: 'http://x.test' }).getAgents(); } finally { globalThis.fetch = saved; }
  const err = await rejection(promise);
  assert.match(err.message, /no global fetch/);
  assert.ok(Date.now() - started < 100);
});

check('Node base URL: SOPHRA_BASE_URL at init time, else http://127.0.0.1:8000', async () => {
  const sophra = require(sdkPath);
  const fake = fakeFetch([json(200, { success: true })]);
  delete process.env.SOPHRA_BASE_URL;
  await sophra.createClient({ apiKey: 'sk_live_x', fetch: fake.fetch }).getAgents();
  process.env.SOPHRA_BASE_URL = 'https://sophra.example.com/';
  await sophra.createClient({ apiKey: 'sk_live_x', fetch: fake.fetch }).getAgents();
  assert.deepStrictEqual(fake.requests.map((r) => r.url), ['http://127.0.0.1:8000/api/agents', 'https://sophra.example.com/api/agents']);
});

check('bad option types throw at init', async () => {
  const sophra = require(sdkPath);
  assert.throws(() => sophra.createClient({ apiKey: 'k', timeoutMs: 0 }), TypeError);
  assert.throws(() => sophra.createClient({ apiKey: 'k', maxRetryMs: -1 }), TypeError);
  assert.throws(() => sophra.createClient({ apiKey: 'k', baseUrl: 42 }), TypeError);
  assert.throws(() => sophra.createClient({ apiKey: 'k', onBudget: 'call me' }), TypeError);
  assert.throws(() => sophra.createClient({ apiKey: 'k', budgetThresholds: 80 }), TypeError);
  assert.throws(() => sophra.createClient({ apiKey: 'k', budgetThresholds: [80, 0] }), TypeError);
});

check('budget(agentId) and onBudget: once per threshold crossed upward, again after a reset', async () => {
  const answer = (id, percent) => json(200, { success: true, budget: { id, percent_used: percent } });
  const crossed = [];
  const { sophra } = client([answer('b1', 50), answer('b1', 90), answer('b1', 95), answer('b1', 10),
                             answer('b1', 101), answer('b2', 85), json(200, { success: true })],
                            { onBudget: (agentId, t, b) => { crossed.push([agentId, t, b.percent_used]); throw new Error('x'); } });
  assert.strictEqual(sophra.budget('a'), null);
  const seen = [];
  for (let i = 0; i < 7; i++) {
    await sophra.reportVitals({ agentId: 'a' });
    seen.push(sophra.budget('a') && sophra.budget('a').percent_used);
  }
  assert.deepStrictEqual(seen, [50, 90, 95, 10, 101, 85, null]);
  assert.deepStrictEqual(crossed, [['a', 80, 90], ['a', 80, 101], ['a', 100, 101], ['a', 80, 85]]);
});

// The checks share nothing but the module, so they run concurrently to keep this quick.
(async () => {
  const outcomes = await Promise.allSettled(checks.map(([, fn]) => fn()));
  const failed = outcomes.map((o, i) => [checks[i][0], o]).filter(([, o]) => o.status === 'rejected');
  for (const [name, o] of failed) process.stderr.write(`FAILED: ${name}\n${o.reason && o.reason.stack || o.reason}\n`);
  if (consoleUse.length) process.stderr.write('the SDK wrote to the console: ' + JSON.stringify(consoleUse) + '\n');
  if (failed.length || consoleUse.length) process.exit(1);
  process.stdout.write(`ok ${checks.length} checks\n`);
})();
