// How long the agents overview takes to render once its data arrived: opens #/agents in
// headless Chromium `runs` times (a fresh tab each, signed in with `key`) and reads the
// page's own 'sophra:agents:render' measure (data parsed -> table in the DOM and laid out).
// Usage: node bench/dashboard_render.js <base url> <key> [runs=5]
// Prints JSON: {"runs_ms": [...], "rows": N (agents in the table), "median_ms": M}. Needs `make browser`.
const path = require('path');
const { createRequire } = require('module');
const { chromium } = createRequire(path.join(__dirname, '..', 'tests', 'browser', 'package.json'))('playwright-core');

(async () => {
  const [base, key, runs = '5'] = process.argv.slice(2);
  if (!base || !key) throw new Error('usage: node bench/dashboard_render.js <base url> <key> [runs]');
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
  });
  const out = { runs_ms: [], rows: 0 };
  try {
    for (let i = 0; i < Number(runs); i++) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      await context.addInitScript((k) => sessionStorage.setItem('sophra.key', k), key);
      const page = await context.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(`${base}/dashboard/#/agents`);
      await page.waitForFunction(() => performance.getEntriesByName('sophra:agents:render').length > 0, null,
                                 { timeout: 60_000 });
      if (errors.length) throw new Error(errors.join('\n'));
      out.runs_ms.push(await page.evaluate(() => +performance.getEntriesByName('sophra:agents:render')[0].duration.toFixed(1)));
      out.rows = await page.$eval('#agents-table', (t) => Number(t.getAttribute('aria-rowcount')) - 1);  // all agents, not only those in view
      // The windowed table still reaches its last agent by scrolling the page.
      await page.evaluate(() => scrollTo(0, document.documentElement.scrollHeight));
      await page.waitForFunction((n) => {
        const tr = document.querySelector(`#agents-table tr[aria-rowindex="${n + 1}"]`);
        return tr && tr.getBoundingClientRect().bottom <= innerHeight + 1;
      }, out.rows, { timeout: 10_000 });
      out.last_row_reachable = true;
      await context.close();
    }
  } finally {
    await browser.close();
  }
  const sorted = [...out.runs_ms].sort((a, b) => a - b);
  out.median_ms = sorted[Math.floor(sorted.length / 2)];
  console.log(JSON.stringify(out));
})().catch((err) => { console.error(err); process.exit(1); });
