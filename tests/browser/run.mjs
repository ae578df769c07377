// Drives the Latchkey admin UI in a real headless Chromium (Debian's /usr/bin/chromium)
// through Playwright: set the password through the setup link, log in, pair a phone from
// the page and finish with latchkey-client, revoke from the page, watch the demo camera,
// check that a device named like markup shows as text on every page and runs nothing,
// and check that a page of another origin cannot revoke or open anything.
// Run by tests/tests/admin_ui.rs with ADMIN_URL, SETUP_LINK, FINGERPRINT, PASSWORD,
// CLIENT_BIN, CLIENT_STATE and SHOTS in the environment.
import { chromium } from 'playwright-core';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import path from 'node:path';

const run = promisify(execFile);
const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
const ADMIN = env('ADMIN_URL');
const SHOTS = env('SHOTS');
const PASSWORD = env('PASSWORD');
const CLIENT = env('CLIENT_BIN');
const STATE = env('CLIENT_STATE');
const step = (s) => console.log(`step: ${s}`);
const shot = (page, name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

// The flags that work here (shared recipes); Playwright adds its own profile directory.
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let evil;
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1100, height: 800 } });
  context.setDefaultTimeout(45000); // generous: CI machines have 2 cores
  const page = await context.newPage();
  // Anything a device name makes the page run or try to run: an alert, or the CSP
  // refusing an inline handler (the CSP is the second wall; the escaping is the first).
  const injected = [];
  page.on('dialog', (d) => { if (d.type() === 'alert') injected.push(`alert: ${d.message()}`); d.accept(); });
  page.on('console', (m) => { if (/Content Security Policy|inline event handler/i.test(m.text())) injected.push(m.text()); });
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  const EVIL = '<img src=x onerror=alert(1)>';
  async function namesAreText(where) {
    const made = await page.evaluate(() => document.querySelectorAll('img[src=x], img[onerror], [onerror]').length);
    assert.equal(made, 0, `${where}: a device name became markup`);
    assert.deepEqual(injected, [], `${where}: a device name ran or tried to run script`);
  }

  step('setup link');
  await page.goto(env('SETUP_LINK'));
  assert.equal(await page.textContent('#fingerprint'), env('FINGERPRINT'));
  await shot(page, 'setup');
  await page.fill('input[name=password]', PASSWORD);
  await page.fill('input[name=password2]', PASSWORD);
  await page.click('#setup button');
  await page.waitForURL(/\/pair$/);

  step('log out and in again');
  await page.click('button[data-post="/logout"]');
  await page.waitForURL(/\/login$/);
  await page.fill('input[name=password]', 'wrong password!');
  await page.click('#login button');
  await page.waitForSelector('#flash.error');
  await page.fill('input[name=password]', PASSWORD);
  await page.click('#login button');
  await page.waitForURL(/\/devices$/);

  async function pairFromPage(name, autoConfirm, stateDir) {
    await page.goto(`${ADMIN}/pair`);
    await page.fill('input[name=name]', name);
    await page.selectOption('select[name=role]', 'viewer');
    await page.selectOption('select[name=expires_secs]', '86400');
    if (autoConfirm) await page.check('input[name=auto_confirm]');
    await page.click('#pair-form button');
    await page.waitForSelector('#qr svg');
    const uri = (await page.textContent('#pair-uri')).trim();
    assert.match(uri, /^latchkey:\/\/pair\?/);
    assert.match(await page.textContent('#countdown'), /^[0-5]:\d\d$/);
    const { stdout } = await run(CLIENT, ['--state', stateDir, 'pair', uri, '--name', 'from-cli'], { timeout: 30000 });
    return { uri, code: /short code: (\d+)/.exec(stdout)?.[1] };
  }

  step('pair a phone through the page');
  const { code } = await pairFromPage('browser-phone', false, STATE);
  assert.ok(code, 'latchkey-client printed no short code');
  const row = page.locator('#pending tr', { hasText: code });
  await row.waitFor();
  await shot(page, 'pair');
  await row.locator('button', { hasText: 'Confirm' }).click();
  await row.waitFor({ state: 'detached' });
  const cams = await run(CLIENT, ['--state', STATE, 'cameras', '--json'], { timeout: 30000 });
  assert.equal(JSON.parse(cams.stdout)[0].id, 'demo');

  step('a second phone, admitted at once');
  await pairFromPage('keeper', true, `${STATE}-keeper`);

  step('a phone named like markup: text on every page');
  const evilPair = await pairFromPage(EVIL, false, `${STATE}-evil`);
  const evilRow = page.locator('#pending tr', { hasText: evilPair.code });
  await evilRow.waitFor();
  assert.ok((await evilRow.locator('td').first().textContent()).startsWith(EVIL), 'the pending row shows the name as text');
  await namesAreText('pair (pending)');
  await evilRow.locator('button', { hasText: 'Confirm' }).click();
  await evilRow.waitFor({ state: 'detached' });
  await page.goto(`${ADMIN}/devices`);
  const evilDev = page.locator('#devices tbody tr', { hasText: EVIL });
  assert.equal(await evilDev.getAttribute('data-name'), EVIL);
  assert.equal(await evilDev.getAttribute('data-state'), 'active');
  await namesAreText('devices');
  const evilId = await evilDev.getAttribute('data-device');
  await page.goto(`${ADMIN}/audit?device=${encodeURIComponent(evilId)}`);
  assert.equal(await page.locator('select[name=device] option:checked').textContent(), `${EVIL} (${evilId})`);
  assert.ok(await page.locator('#audit tbody td', { hasText: EVIL }).count() > 0, 'the audit rows name the device');
  await namesAreText('audit');
  for (const p of ['cameras', 'remote', 'pair']) {
    await page.goto(`${ADMIN}/${p}`);
    await page.waitForTimeout(500); // app.js has filled in what it fetches
    await namesAreText(p);
  }

  step('revoke from the devices page');
  await page.goto(`${ADMIN}/devices`);
  const dev = page.locator('tr[data-name="browser-phone"]');
  assert.equal(await dev.getAttribute('data-state'), 'active');
  await shot(page, 'devices');
  await dev.locator('button', { hasText: 'Revoke' }).click();
  await page.waitForSelector('tr[data-name="browser-phone"][data-state="revoked"]');
  await assert.rejects(run(CLIENT, ['--state', STATE, 'cameras'], { timeout: 30000 }));

  step('camera page: frames arrive');
  await page.goto(`${ADMIN}/cameras`);
  const img = page.locator('#view-demo');
  // Polled with evaluate, not waitForFunction: the pages' CSP (rightly) forbids the
  // string evaluation waitForFunction relies on.
  for (let i = 0; !(await img.evaluate((e) => e.naturalWidth > 0)); i++) {
    assert.ok(i < 100, 'no picture in the live view after 10 s');
    await page.waitForTimeout(100);
  }
  const a = await img.screenshot();
  await page.waitForTimeout(1500);
  const b = await img.screenshot();
  assert.ok(!a.equals(b), 'the live view did not change in 1.5 s');
  // The status table refreshes every 2 s: it must now show the camera online, watched.
  await page.locator('tr[data-camera="demo"] .cam-state', { hasText: 'online' }).waitFor();
  await shot(page, 'cameras');

  step('remote access page');
  await page.goto(`${ADMIN}/remote`);
  await page.waitForSelector('#diagnosis, #remote-status .error');
  await page.click('#remote-form button');
  await page.waitForSelector('#remote-plan:not([hidden]), #flash.error');
  await shot(page, 'remote');

  step('audit page, filtered');
  await page.goto(`${ADMIN}/audit?kind=device-revoked`);
  assert.equal(await page.locator('#audit tbody tr').count(), 1);
  await page.goto(`${ADMIN}/audit`);
  assert.ok(await page.locator('#audit tbody tr').count() > 3);
  await shot(page, 'audit');

  step('a page of another origin posts to revoke and to open remote access');
  const devices = await page.evaluate(async () => (await fetch('/api/devices')).json());
  const keeper = devices.find((d) => d.name === 'keeper');
  assert.equal(keeper.state, 'active');
  evil = createServer((req, res) => {
    res.setHeader('content-type', 'text/html');
    res.end(`<!doctype html><title>cute cats</title>
<form id=r method=post action="${ADMIN}/api/devices/${keeper.id}/revoke"></form>
<form id=o method=post action="${ADMIN}/api/remote/open" enctype="text/plain">
<input name='{"ipv4":true,"lease_secs":3600,"x":"' value='"}'></form>
<script>
fetch("${ADMIN}/api/remote/open", {method: "POST", mode: "no-cors", credentials: "include",
  headers: {"content-type": "text/plain"}, body: '{"ipv4":true,"lease_secs":3600}'});
setTimeout(() => document.getElementById(location.search === '?open' ? 'o' : 'r').submit(), 300);
</script>`);
  });
  await new Promise((ok) => evil.listen(0, '127.0.0.1', ok));
  const evilUrl = `http://127.0.0.1:${evil.address().port}/`;
  // A fresh page per attack: each load runs the attacker's script once.
  for (const [query, url] of [['?revoke', '/revoke'], ['?open', '/api/remote/open']]) {
    const other = await context.newPage();
    const answer = other.waitForResponse((r) => r.url().endsWith(url) && r.request().method() === 'POST');
    await other.goto(evilUrl + query);
    assert.equal((await answer).status(), 403, `cross-origin POST ${url}`);
    await other.close();
  }
  const after = await page.evaluate(async () => (await fetch('/api/devices')).json());
  assert.equal(after.find((d) => d.name === 'keeper').state, 'active');
  const remote = await page.evaluate(async () => (await fetch('/api/remote')).json());
  assert.equal(remote.approval, null);
  console.log('browser test passed');
} finally {
  if (evil) evil.close();
  await browser.close();
}
