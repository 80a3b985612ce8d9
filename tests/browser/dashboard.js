// Uses the dashboard as a person would, in headless Chromium, against a running api with
// seeded data, and prints what it saw as JSON for tests/test_dashboard.py to check.
// Usage: node dashboard.js '<json: {base, key, readOnlyKey, appId, spareKeyId, shots}>'
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const LINE = [29, 78, 216];  // chart.js COLORS.line, the data series' stroke

(async () => {
  const cfg = JSON.parse(process.argv[2]);
  fs.mkdirSync(cfg.shots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const seen = { consoleErrors: [], pageErrors: [], shots: [] };
  const requests = [];
  page.on('console', (m) => { if (m.type() === 'error') seen.consoleErrors.push({ text: m.text(), url: m.location().url || '' }); });
  page.on('pageerror', (e) => seen.pageErrors.push(String(e)));
  const auth = new Set();  // the Authorization headers the page sent to the api
  page.on('request', (r) => {
    requests.push(r.url());
    if (/\/(api|v1)\//.test(new URL(r.url()).pathname)) auth.add(r.headers().authorization || 'none');
  });
  const shot = async (name) => {
    const file = path.join(cfg.shots, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    seen.shots.push(file);
  };
  const texts = (sel) => page.$$eval(sel, (els) => els.map((e) => e.textContent.trim()));
  const rows = () => texts('#agents-table tbody tr[data-agent-id] td:first-child a');
  const waitRows = (n) => page.waitForFunction((k) => document.querySelectorAll('#agents-table tbody tr[data-agent-id]').length === k, n);
  const measures = () => page.evaluate(() => performance.getEntriesByName('sophra:agents:render').length);
  // Every chart in `root`: its drawn (non-null) points and how many of its canvas pixels
  // are the series' colour, i.e. that a line was really drawn.
  const charts = (root) => page.$$eval(`${root} .chart[data-metric]`, (els, line) => els.map((el) => {
    const [x, y] = el.__chartData;
    const points = [];
    for (let i = 0; i < x.length; i++) if (y[i] != null) points.push([x[i], y[i]]);
    const forecast = el.__chartData.length > 2 ? el.__chartData[2].filter((v) => v != null).length : 0;
    const c = el.querySelector('canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let pixels = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] > 200 && Math.abs(d[i] - line[0]) < 40 && Math.abs(d[i + 1] - line[1]) < 40 && Math.abs(d[i + 2] - line[2]) < 40) pixels++;
    }
    return { metric: el.dataset.metric, granularity: el.dataset.granularity || null, points, forecast, pixels,
             markers: el.__chartMarks.markers, spans: el.__chartMarks.spans };
  }), LINE);
  const waitCharts = (root, n) => page.waitForFunction(([r, k]) => {
    const els = document.querySelectorAll(`${r} .chart[data-metric]`);
    return els.length === k && [...els].every((e) => e.__chartData && e.querySelector('canvas'));
  }, [root, n]);

  try {
    // -- sign in -------------------------------------------------------------------
    await page.goto(cfg.base + '/');
    await page.waitForSelector('#sign-in-form');
    seen.signInUrl = page.url();
    seen.getKeyHref = await page.getAttribute('#get-key', 'href');
    await shot('sign-in-1280');
    await page.fill('#sign-in-key', cfg.key);
    await page.click('#sign-in');
    await waitRows(3);
    seen.storedKey = await page.evaluate(() => sessionStorage.getItem('sophra.key'));

    // -- agents overview -----------------------------------------------------------
    seen.overview = await page.$$eval('#agents-table tbody tr[data-agent-id]', (trs) => trs.map((tr) => ({
      id: tr.dataset.agentId, name: tr.cells[0].querySelector('a').textContent, status: tr.cells[1].textContent.trim(),
      stale: tr.classList.contains('stale'), last: tr.cells[7].textContent, trendPoints: (tr.cells[8].querySelector('polyline')?.getAttribute('points') || '').split(' ').filter(Boolean).length,
      ari: tr.cells[9].textContent })));
    await page.fill('#agent-search', 'bill');
    await waitRows(1);
    seen.searchBill = await rows();
    await page.fill('#agent-search', '');
    await page.selectOption('#agent-status', 'stale');
    await waitRows(1);
    seen.filterStale = await rows();
    await page.selectOption('#agent-status', 'critical');
    await waitRows(1);
    seen.filterCritical = await rows();
    await page.selectOption('#agent-status', '');
    await waitRows(3);
    await page.click('button[data-sort="name"]');
    seen.sortNameAsc = await rows();
    await page.click('button[data-sort="name"]');
    seen.sortNameDesc = await rows();
    await page.click('button[data-sort="ari"]');
    seen.sortAriDesc = await rows();
    await shot('agents-1280');

    // -- agent detail --------------------------------------------------------------
    await page.fill('#agent-search', 'checkout');
    await waitRows(1);
    seen.searchCheckout = await rows();
    await page.click('#agents-table tbody a');
    await waitCharts('#vital-charts', 5);
    await waitCharts('#custom-charts', 1);
    await page.waitForSelector('#interventions-table');
    await page.waitForSelector('#metadata-table');
    await page.waitForSelector('#agent-alerts tbody tr');
    seen.agentHash = await page.evaluate(() => location.hash);
    seen.agentName = await page.textContent('#agent-name');
    const range = (re) => { const u = new URL(requests.find((x) => re.test(x))); return [+u.searchParams.get('start'), +u.searchParams.get('end')]; };
    seen.vitalRange = range(/\/api\/agents\/[^/]+\/metrics\?/);
    seen.vitalCharts = await charts('#vital-charts');
    seen.customCharts = await charts('#custom-charts');
    seen.events = await texts('#events-table tbody .event-type');
    seen.eventDetails = await texts('#events-table tbody td:nth-child(3)');
    seen.interventions = await texts('#interventions-table tbody .description');
    seen.outcomes = await page.$$eval('#interventions-table tbody tr', (trs) => trs.map((tr) => {
      const cell = tr.querySelector('.outcome'), verdict = cell.querySelector('.badge');
      return [(verdict || cell).textContent.trim(), [...cell.querySelectorAll('div')].map((d) => d.textContent).join('; '),
              tr.cells[tr.cells.length - 1].textContent.trim()];
    }));
    seen.checkups = await page.$$eval('.checkups li', (lis) => lis.map((li) => [li.dataset.checkup, li.querySelector('.badge').textContent.trim()]));
    seen.ariStats = [await page.textContent('#ari-today'), await page.textContent('#ari-saved'), await page.textContent('#ari-resolved'),
                    await page.textContent('#ari-saved-measured')];
    seen.metadataKeys = await texts('#metadata-table tbody th');
    seen.metadataJson = JSON.parse(await page.textContent('#metadata-json'));
    seen.agentRules = await page.$$eval('#agent-alerts tbody tr', (trs) => trs.map((tr) => [tr.cells[0].textContent.trim(), tr.querySelector('.rule-state').textContent.trim()]));
    await shot('agent-detail-1280');
    const before = requests.length;
    await page.check('input[name="agent-range-span"][value="1h"]');
    await page.waitForFunction(() => [...document.querySelectorAll('#vital-charts .chart-note')].every((n) => n.textContent.startsWith('1m')));
    seen.oneHourRequests = requests.slice(before).filter((u) => u.includes('/metrics?')).length;
    // A custom range: two hours ending an hour ago, to the minute.
    const custom = await page.evaluate(() => {
      const local = (ms) => new Date(ms - new Date(ms).getTimezoneOffset() * 60000).toISOString().slice(0, 16);
      const end = Math.floor(Date.now() / 60000) * 60000 - 3600000;
      return { from: local(end - 7200000), to: local(end), start: end - 7200000, end };
    });
    await page.check('input[name="agent-range-span"][value="custom"]');
    await page.fill('#agent-range .range-from', custom.from);
    await page.fill('#agent-range .range-to', custom.to);
    const asked = page.waitForRequest((r) => r.url().includes('/metrics?') && r.url().includes(`start=${custom.start}&end=${custom.end}`));
    await page.click('#agent-range .range-apply');
    await asked;
    await page.waitForFunction((t) => [...document.querySelectorAll('#vital-charts .chart')].every((c) => c.__chartData[0][0] === t), custom.start / 1000);
    seen.customRange = { start: custom.start, end: custom.end, charts: await charts('#vital-charts') };

    // -- applications --------------------------------------------------------------
    await page.click('[data-nav="applications"]');
    await page.waitForSelector('#apps-table tbody tr');
    seen.apps = await page.$$eval('#apps-table tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent.trim())));
    await shot('applications-1280');
    await page.click('#apps-table tbody a');
    await waitCharts('#app-charts', 3);
    await page.waitForSelector('#deployments-table');
    await page.waitForSelector('#app-insights li');
    await page.waitForSelector('#app-alerts tbody tr');
    seen.appRange = range(/\/v1\/applications\/[^/]+\/metrics\?/);
    seen.appCharts = await charts('#app-charts');
    seen.deployments = await page.$$eval('#deployments-table tbody tr', (trs) => trs.map((tr) => [tr.cells[0].textContent.trim(), tr.querySelector('.verdict').textContent.trim(), tr.querySelector('.reason').textContent.trim()]));
    seen.insights = await texts('#app-insights .insight-title');
    seen.appSummary = await page.textContent('#app-summary');
    await shot('application-detail-1280');
    const mark = requests.length;
    await page.selectOption('#app-granularity', '1h');
    await page.waitForFunction(() => [...document.querySelectorAll('#app-charts .chart')].every((c) => c.dataset.granularity === '1h'));
    seen.granularityRequests = requests.slice(mark).filter((u) => u.includes('/metrics?')).map((u) => Object.fromEntries(new URL(u).searchParams));
    seen.hourlyCharts = await charts('#app-charts');

    // An alert rule: the api's validation error shows next to its field, then it is created.
    await page.fill('#rule-name', 'Error budget');
    await page.fill('#rule-condition-metric', 'error_rate');
    await page.selectOption('#rule-condition-aggregation', 'max');
    await page.fill('#rule-condition-window', '5x');
    await page.selectOption('#rule-condition-operator', '>=');
    await page.fill('#rule-condition-threshold', '0.02');
    await page.fill('#rule-for', '2m');
    await page.fill('#rule-repeat_interval', '1h');
    await page.fill('#rule-actions', 'oncall@example.com, lead@example.com');
    await page.click('#rule-save');
    await page.waitForFunction(() => document.querySelector('[data-field="condition.window"] .field-error').textContent !== '');
    seen.windowError = await page.textContent('[data-field="condition.window"] .field-error');
    seen.windowInvalid = await page.getAttribute('#rule-condition-window', 'aria-invalid');
    await page.fill('#rule-condition-window', '10m');
    await page.click('#rule-save');
    await page.waitForFunction(() => document.querySelectorAll('#app-alerts tbody tr').length === 2);
    seen.appRules = await page.$$eval('#app-alerts tbody tr', (trs) => trs.map((tr) => [tr.cells[0].textContent.trim(), tr.cells[1].textContent.trim(), tr.querySelector('.rule-state').textContent.trim()]));
    await page.click('#app-alerts tbody tr:has-text("Error budget") .rule-edit');
    await page.fill('#rule-condition-threshold', '0.03');
    await page.click('#rule-save');
    await page.waitForFunction(() => [...document.querySelectorAll('#app-alerts tbody tr')].some((tr) => tr.cells[1].textContent.includes('>= 0.03')));
    seen.appRulesEdited = await page.$$eval('#app-alerts tbody tr', (trs) => trs.map((tr) => tr.cells[1].textContent.trim()));
    await page.click('#app-alerts tbody tr:has-text("Slow responses") .rule-history-btn');
    await page.waitForSelector('.history-table tbody tr');
    seen.history = await page.$$eval('.history-table tbody tr', (trs) => trs.map((tr) => [...tr.cells].slice(1).map((c) => c.textContent.trim())));
    // Silence one rule for an hour; delete the other, confirming the dialog.
    await page.click('#app-alerts tbody tr:has-text("Error budget") .rule-silence');
    await page.waitForSelector('#app-alerts tbody tr:has-text("Error budget") .rule-silenced');
    seen.silenceButton = await page.textContent('#app-alerts tbody tr:has-text("Error budget") .rule-silence');
    page.once('dialog', (d) => { seen.deleteDialog = d.message(); d.accept(); });
    await page.click('#app-alerts tbody tr:has-text("Slow responses") .rule-delete');
    await page.waitForFunction(() => document.querySelectorAll('#app-alerts .rules-table tbody tr').length === 1);
    seen.rulesAfterDelete = await page.$$eval('#app-alerts .rules-table tbody tr', (trs) => trs.map((tr) => tr.cells[0].textContent.trim()));

    // -- keys ----------------------------------------------------------------------
    await page.click('[data-nav="keys"]');
    await page.waitForSelector('#keys-table tbody tr');
    seen.keysBefore = await page.$$eval('#keys-table tbody tr', (trs) => trs.length);
    await page.click('#key-create');
    await page.waitForSelector('#key-created:not([hidden])');
    seen.createdKey = await page.textContent('#key-new');
    await page.click('#key-copy');
    await page.waitForFunction(() => document.getElementById('key-copied').textContent !== '');
    seen.copyStatus = await page.textContent('#key-copied');
    await page.click(`tr[data-key-id="${cfg.spareKeyId}"] .revoke`);
    await page.click(`tr[data-key-id="${cfg.spareKeyId}"] .confirm-revoke`);
    await page.waitForFunction((id) => document.querySelector(`tr[data-key-id="${id}"]`).textContent.includes('revoked'), cfg.spareKeyId);
    seen.keyRows = await page.$$eval('#keys-table tbody tr', (trs) => trs.map((tr) => [tr.dataset.keyId, tr.cells[1].textContent.trim(), tr.cells[3].textContent.trim().split(' ').slice(0, 2).join(' ')]));
    await shot('keys-1280');

    // -- 390 px wide: every page usable, nothing wider than the screen but scroll boxes --
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = () => page.evaluate(() => {
      const w = document.documentElement.clientWidth;
      const out = [];
      for (const el of document.body.querySelectorAll('*')) {
        if (el.closest('.table-scroll, .chart, pre, svg')) continue;
        const r = el.getBoundingClientRect();
        if (r.width && r.right > w + 1) out.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}.${el.className}`);
      }
      return { scrollWidth: document.documentElement.scrollWidth, width: w, offenders: out.slice(0, 10) };
    });
    seen.narrow = {};
    const narrow = async (name, hash, ready) => {
      await page.evaluate((h) => { location.hash = h; }, hash);
      await ready();
      seen.narrow[name] = await overflow();
      await shot(`${name}-390`);
    };
    await narrow('agents', '#/agents', () => waitRows(3));
    // The 10 s refresh keeps search, sort and the table's scroll.
    await page.fill('#agent-search', 'agent-');
    await page.click('button[data-sort="name"]');
    await page.click('button[data-sort="name"]');
    const order = await rows();
    await page.$eval('#agents-scroll', (el) => { el.scrollLeft = 150; });
    const n = await measures();
    await page.waitForFunction((k) => performance.getEntriesByName('sophra:agents:render').length > k, n, { timeout: 15000 });
    seen.refresh = { before: order, after: await rows(), search: await page.inputValue('#agent-search'),
                     scrollLeft: await page.$eval('#agents-scroll', (el) => el.scrollLeft),
                     sort: await page.getAttribute('th[data-col="name"]', 'aria-sort') };
    await narrow('agent-detail', '#/agents/agent-checkout', () => waitCharts('#vital-charts', 5));
    await narrow('applications', '#/applications', () => page.waitForSelector('#apps-table tbody tr'));
    await narrow('application-detail', `#/applications/${cfg.appId}`, () => waitCharts('#app-charts', 3));
    await narrow('keys', '#/keys', () => page.waitForSelector('#keys-table tbody tr'));
    seen.narrowChartPixels = (await charts('#app-charts').catch(() => [])).map((c) => c.pixels);

    // -- sign out forgets the key; a read-only key sees and cannot change -------------
    await page.click('#sign-out');
    await page.waitForSelector('#sign-in-form');
    seen.afterSignOut = { key: await page.evaluate(() => sessionStorage.getItem('sophra.key')), hash: await page.evaluate(() => location.hash) };
    await page.evaluate(() => { location.hash = '#/agents'; });
    await page.waitForFunction(() => location.hash === '#/sign-in');
    await shot('sign-in-390');
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.fill('#sign-in-key', cfg.readOnlyKey);
    await page.click('#sign-in');
    await waitRows(3);
    seen.readOnly = { badge: await page.isVisible('#who-ro') };
    await page.evaluate((id) => { location.hash = `#/applications/${id}`; }, cfg.appId);
    await waitCharts('#app-charts', 3);
    await page.waitForSelector('#rule-ro');
    seen.readOnly.ruleNote = await page.textContent('#rule-ro');
    seen.readOnly.ruleFormDisabled = await page.$eval('#rule-fields', (f) => f.disabled);
    seen.readOnly.editDisabled = await page.$$eval('#app-alerts .rule-edit', (bs) => bs.every((b) => b.disabled));
    await page.click('[data-nav="keys"]');
    await page.waitForSelector('#keys-table tbody tr');
    seen.readOnly.keysNote = await page.isVisible('#keys-ro') ? await page.textContent('#keys-ro') : null;
    seen.readOnly.createDisabled = await page.$eval('#key-fields', (f) => f.disabled);
    seen.readOnly.revokeDisabled = await page.$$eval('#keys-table .revoke', (bs) => bs.length > 0 && bs.every((b) => b.disabled));
    seen.authHeaders = [...auth];
  } catch (err) {
    seen.failure = String(err.stack || err);
    await page.screenshot({ path: path.join(cfg.shots, 'failure.png'), fullPage: true }).catch(() => {});
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(seen));
})().catch((err) => { console.error(err); process.exit(1); });
