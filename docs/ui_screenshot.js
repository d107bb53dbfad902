// The README's pictures of a study in the MLflow UI, taken from a real run through the URL a study
// prints: its saved runs view (one row per configuration, mean over seeds, best probe first), then the
// chart view of the same groups (mean with the spread over seeds), filtered to the probe metrics.
//   node docs/ui_screenshot.js "http://127.0.0.1:5000/#/experiments/<id>/runs?viewStateShareKey=ablations-runs" table.png charts.png
// (docs/ui_screenshot.sh starts the UI and installs playwright-core; Chromium comes from the system.)
const { chromium } = require('playwright-core');

(async () => {
  const [url, table, charts] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForTimeout(9000);  // the UI's first render fetches runs, metrics and tags
  const closeAssistant = page.locator('button[aria-label="Close"]').first();  // a new profile opens it
  if (await closeAssistant.count()) await closeAssistant.click({ timeout: 2000 }).catch(() => {});
  await page.waitForTimeout(1000);
  await page.screenshot({ path: table });
  await page.locator('[role="radiogroup"] label, [role="radiogroup"] button, [role="radio"]').nth(1).click();  // chart view
  await page.waitForTimeout(6000);
  await page.getByPlaceholder('Search metric charts').fill('probe_');
  await page.waitForTimeout(3000);
  await page.screenshot({ path: charts });
  await browser.close();
})();
