// The dashboard's SQL page as a person uses it, in headless Chromium against a running api:
// a query run, an error shown at the box, the CSV downloaded, a table's starting query.
// Prints what it saw as JSON for tests/test_dashboard.py.
// Usage: node sql.js '<json: {base, key, appId}>'
const fs = require('fs');
const { chromium } = require('playwright-core');

(async () => {
  const cfg = JSON.parse(process.argv[2]);
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const seen = { pageErrors: [] };
  page.on('pageerror', (e) => seen.pageErrors.push(String(e)));
  const cells = (sel) => page.$$eval(sel, (trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)));
  try {
    await page.addInitScript((key) => sessionStorage.setItem('sophra.key', key), cfg.key);
    await page.goto(cfg.base + '/dashboard/#/sql');
    await page.waitForSelector('#sql-query');
    seen.navCurrent = await page.getAttribute('[data-nav="sql"]', 'aria-current');

    const query = `SELECT metric, count() AS n, sum(value) AS total FROM app_metrics WHERE application_id = '${cfg.appId}' GROUP BY metric`;
    await page.fill('#sql-query', query);
    await page.click('#sql-run');
    await page.waitForFunction(() => /row/.test(document.querySelector('#sql-status').textContent));
    seen.head = (await cells('#sql-result thead tr'))[0];
    seen.rows = await cells('#sql-result tbody tr');
    seen.status = (await page.textContent('#sql-status')).split(' · ')[0];

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#sql-csv')]);
    seen.csvName = download.suggestedFilename();
    seen.csv = fs.readFileSync(await download.path(), 'utf8');

    await page.fill('#sql-query', 'SELECT * FROM system.tables');
    await page.click('#sql-run');
    await page.waitForFunction(() => document.querySelector('#sql-error').textContent !== '');
    seen.error = await page.textContent('#sql-error');
    seen.invalid = await page.getAttribute('#sql-query', 'aria-invalid');
    seen.focused = await page.evaluate(() => document.activeElement.id);

    await page.click('.sql-table[data-table="vitals"]');
    await page.waitForFunction(() => document.querySelector('#sql-result thead th')?.textContent === 'id'
      && /row/.test(document.querySelector('#sql-status').textContent));
    seen.vitalsQuery = await page.inputValue('#sql-query');
    seen.vitalsHead = (await cells('#sql-result thead tr'))[0];
    seen.vitalsStatus = (await page.textContent('#sql-status')).split(' · ')[0];
    seen.invalidAfter = await page.getAttribute('#sql-query', 'aria-invalid');
  } catch (err) {
    seen.failure = String(err.stack || err);
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(seen));
})();
