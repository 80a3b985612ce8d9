// Runs one reference snippet the way the docs present it: as code with top-level
// `await` (so as the body of an async function, since CommonJS has no top-level await),
// with require() resolving next to the snippet, where the test put sophra-sdk.js.
//
// It watches the SDK's report calls from outside (wrapping the module's methods) and
// prints one JSON line on stdout once the snippet and every call it started are done:
//   {"calls": [{method, arg, ok, value | error, startedMs, settledMs}], "result": globalThis.snippetResult}
// SNIPPET_MAX_RETRY_MS, when set, is added to init() options so failure cases end quickly.
'use strict';
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');
const { performance } = require('perf_hooks');

const file = path.resolve(process.argv[2]);
const requireHere = createRequire(file);
const sdk = requireHere('./sophra-sdk');

const calls = [];
const pending = [];
for (const method of ['reportVitals', 'reportEvent']) {
  const original = sdk[method];
  sdk[method] = function (arg) {
    const call = { method, arg, startedMs: performance.now() };
    calls.push(call);
    const promise = original.apply(this, arguments).then((value) => {
      Object.assign(call, { ok: true, value, settledMs: performance.now() });
      return value;
    }, (err) => {
      Object.assign(call, { ok: false, settledMs: performance.now(),
                            error: { name: err.name, message: err.message, status: err.status, body: err.body } });
      throw err;
    });
    pending.push(promise.catch(() => {}));
    return promise;
  };
}
if (process.env.SNIPPET_MAX_RETRY_MS) {
  const init = sdk.init;
  sdk.init = (opts) => init({ ...opts, maxRetryMs: Number(process.env.SNIPPET_MAX_RETRY_MS) });
}

const AsyncFunction = (async () => {}).constructor;
const snippet = new AsyncFunction('require', 'module', '__filename', '__dirname', fs.readFileSync(file, 'utf8'));

(async () => {
  await snippet(requireHere, { exports: {} }, file, path.dirname(file));
  // Fire-and-forget calls may still be in flight; the summary waits for them.
  while (pending.length) await pending.shift();
  process.stdout.write(JSON.stringify({ calls, result: globalThis.snippetResult === undefined ? null : globalThis.snippetResult }) + '\n');
})().catch((err) => {
  process.stderr.write('snippet failed: ' + (err && err.stack || err) + '\n');
  process.exitCode = 1;
});
