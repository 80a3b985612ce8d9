// The dashboard's budgets page as a person uses it, in headless Chromium against a running
// api whose worker has counted reports: the table, a refused form with the api's message
// at its field, a budget created through the form, one deleted after the confirmation.
// Prints what it saw as JSON for tests/test_dashboard.py.
// Usage: node budgets.js '<json: {base, key, shots}>'
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

(async () => {
  const cfg = JSON.parse(process.argv[2]);
  fs.mkdirSync(cfg.shots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const seen = { pageErrors: [] };
  page.on('pageerror', (e) => seen.pageErrors.push(String(e)));
  const table = () => page.$$eval('#budgets-table tbody tr', (trs) => trs.map((tr) => [...tr.children].slice(0, 8).map((c) => c.textContent.trim().replace(/\s+/g, ' '))));
  const rowCount = (n) => page.waitForFunction((k) => document.querySelectorAll('#budgets-table tbody tr').length === k, n);
  try {
    await page.addInitScript((key) => sessionStorage.setItem('sophra.key', key), cfg.key);
    await page.goto(cfg.base + '/dashboard/#/budgets');
    await rowCount(2);
    seen.navCurrent = await page.getAttribute('[data-nav="budgets"]', 'aria-current');
    seen.rows = await table();
    seen.forecasts = await page.$$eval('#budgets-table td.budget-forecast', (tds) => tds.map((td) => td.querySelector('time')?.getAttribute('datetime') ?? null));
    seen.meters = await page.$$eval('#budgets-table meter', (ms) => ms.map((m) => m.value));
    seen.fieldsShown = await page.$$eval('#budget-form .field[data-field]', (fs) => fs.filter((f) => !f.hidden).map((f) => f.dataset.field));
    await page.screenshot({ path: path.join(cfg.shots, 'budgets.png'), fullPage: true });

    // A group budget without its tag value: the api's 400 names the field, shown at it.
    await page.selectOption('#budget-scope', 'group');
    await page.selectOption('#budget-period', 'rolling');
    seen.groupFields = await page.$$eval('#budget-form .field[data-field]', (fs) => fs.filter((f) => !f.hidden).map((f) => f.dataset.field));
    await page.fill('#budget-tag', 'team');
    await page.fill('#budget-limit', '5000');
    await page.fill('#budget-window', '6h');
    await page.click('#budget-create');
    await page.waitForFunction(() => document.querySelector('#budget-tag_value-error').textContent !== '');
    seen.error = await page.textContent('#budget-tag_value-error');
    seen.invalid = await page.getAttribute('#budget-tag_value', 'aria-invalid');
    seen.focused = await page.evaluate(() => document.activeElement.id);

    await page.fill('#budget-tag_value', 'support');
    await page.click('#budget-create');
    await rowCount(3);
    seen.afterCreate = await table();
    seen.invalidAfter = await page.getAttribute('#budget-tag_value', 'aria-invalid');

    // Delete the first budget, confirming in place.
    await page.click('#budgets-table tbody tr:first-child .budget-delete');
    seen.confirm = (await page.textContent('#budgets-table tbody tr:first-child td.actions')).trim();
    await page.click('#budgets-table tbody tr:first-child .confirm-delete');
    await rowCount(2);
    seen.afterDelete = await page.$$eval('#budgets-table tbody tr td:first-child', (tds) => tds.map((t) => t.textContent));
  } catch (err) {
    seen.failure = String(err.stack || err);
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(seen));
})();
