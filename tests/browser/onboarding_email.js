// /onboarding.html with SOPHRA_SIGNUP=email, in headless Chromium, printing what it saw as
// JSON for tests/test_onboarding_page.py. Usage:
//   node onboarding_email.js request <base url> <email>   ask for a key: the page says to check the inbox
//   node onboarding_email.js claim <link>                  open the mailed link and press its button
const { chromium } = require('playwright-core');

(async () => {
  const [step, target, email] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage();
  const seen = {};
  try {
    if (step === 'request') {
      await page.goto(target + '/onboarding.html');
      seen.claimShown = await page.isVisible('#claim');
      await page.fill('#email', email);
      await page.click('#create');
      await page.waitForSelector('#mailed:not([hidden])');
      seen.mailed = await page.textContent('#mailed');
      seen.keyShown = await page.isVisible('#created');
      seen.error = await page.textContent('#create-error');
    } else {
      await page.goto(target);
      seen.claimShown = await page.isVisible('#claim');
      seen.keyShownBefore = await page.isVisible('#created');
      await page.click('#claim-button');
      await page.waitForSelector('#created:not([hidden])');
      seen.key = await page.textContent('#new-key');
      seen.claimShownAfter = await page.isVisible('#claim');
      seen.hash = await page.evaluate(() => location.hash);
      await page.goto('about:blank');  // (else only the fragment would change: no new page)
      await page.goto(target);  // the same link again: used up
      await page.click('#claim-button');
      await page.waitForFunction(() => document.getElementById('claim-error').textContent !== '');
      seen.again = await page.textContent('#claim-error');
    }
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(seen));
})().catch(err => { console.error(err); process.exit(1); });
