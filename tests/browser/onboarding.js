// Walks /onboarding.html as a person would, in headless Chromium, and prints what it saw
// as JSON for tests/test_onboarding_page.py to check. Usage: node onboarding.js <base url> <email>
const { chromium } = require('playwright-core');

(async () => {
  const [base, email] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage();
  const seen = {};
  try {
    await page.goto(base + '/onboarding.html');
    await page.fill('#email', email);
    await page.click('#create');
    await page.waitForSelector('#created:not([hidden])');
    seen.firstKey = await page.textContent('#new-key');
    seen.curl = await page.textContent('#curl');

    await page.fill('#email', email);  // the same email again, without a key: refused
    await page.click('#create');
    await page.waitForFunction(() => document.getElementById('create-error').textContent !== '');
    seen.secondAttemptError = await page.textContent('#create-error');

    await page.fill('#manage-key', seen.firstKey);
    await page.click('#list');
    await page.waitForSelector('#keys:not([hidden])');
    seen.account = await page.textContent('#account');
    await page.click('#create-more');
    await page.waitForFunction(() => document.querySelectorAll('#key-rows tr').length === 2);
    seen.secondKey = await page.textContent('#new-key');
    seen.rowsBeforeRevoke = await page.$$eval('#key-rows tr', rows => rows.map(r => r.cells[2].textContent));

    await page.click('#key-rows tr:nth-child(2) .revoke');
    await page.waitForFunction(() => document.querySelectorAll('#key-rows .revoke').length === 1);
    seen.rowsAfterRevoke = await page.$$eval('#key-rows tr', rows => rows.map(r => r.cells[2].textContent.split(' ')[0]));
    seen.masked = await page.$$eval('#key-rows tr', rows => rows.map(r => r.cells[0].textContent));
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(seen));
})().catch(err => { console.error(err); process.exit(1); });
