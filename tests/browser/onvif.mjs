// Drives the admin UI's "Find cameras" panel in a real headless Chromium (Debian's
// /usr/bin/chromium) through Playwright: set the admin password, open Cameras, find the
// test ONVIF camera, pick it, check what will be used, add it with its password, and see
// it listed. Saves screenshots and the pages it saw (for the password grep).
// Run by tests/tests/onboarding.rs inside the gateway's network namespace with ADMIN_URL,
// SETUP_LINK, PASSWORD (admin), CAM_PASSWORD, CAM_IP and SHOTS in the environment.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
const ADMIN = env('ADMIN_URL');
const SHOTS = env('SHOTS');
const CAM_IP = env('CAM_IP');
const step = (s) => console.log(`step: ${s}`);
const shot = async (page, name) => {
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
};

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 900 } });
  context.setDefaultTimeout(45000); // generous: CI machines have 2 cores
  const page = await context.newPage();
  page.on('console', (m) => console.log(`console: ${m.text()}`));
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));

  step('set the admin password');
  await page.goto(env('SETUP_LINK'));
  await page.fill('input[name=password]', env('PASSWORD'));
  await page.fill('input[name=password2]', env('PASSWORD'));
  await page.click('#setup button');
  await page.waitForURL(/\/pair$/);

  step('find cameras');
  await page.goto(`${ADMIN}/cameras`);
  await page.click('#discover');
  const row = page.locator(`#found tr[data-address="${CAM_IP}"]`);
  await row.waitFor();
  const text = await row.textContent();
  assert.match(text, /Latchkey Test Optics/);
  assert.match(text, /LK-ONVIF-1/);
  assert.match(text, /V5\.7\.3/);

  step('pick it, give the password, check the choice');
  await row.locator('button.use-camera').click();
  assert.match(await page.inputValue('#add-camera input[name=address]'), new RegExp(`^${CAM_IP.replace(/\./g, '\\.')}:\\d+$`));
  await page.fill('#add-camera input[name=id]', 'yard');
  await page.fill('#add-camera input[name=password]', env('CAM_PASSWORD'));
  await page.click('#inspect-camera');
  // (waitForFunction would need eval, which the page's CSP rightly forbids)
  await page.locator('#camera-choice', { hasText: 'main stream: main' }).waitFor();
  const choice = await page.textContent('#camera-choice');
  console.log(`choice: ${choice.replace(/\n/g, ' | ')}`);
  assert.match(choice, /sub-stream: sub \(SubStream\) H264 320x240/);
  await shot(page, 'onvif-found');

  step('add it');
  await page.click('#save-camera');
  await page.waitForSelector('#flash.ok >> text=/Camera yard added/');
  const flash = await page.textContent('#flash');
  console.log(`flash: ${flash}`);
  assert.match(flash, /h264 640x480/);
  await page.waitForSelector('tr[data-camera="yard"]');
  await shot(page, 'onvif-added');

  step('rename it');
  await page.fill('#edit-camera input[name=camera]', 'yard');
  await page.fill('#edit-camera input[name=id]', 'garden');
  await page.click('#edit-save');
  await page.waitForSelector('#flash.ok >> text=/Camera garden saved/');
  await page.waitForSelector('tr[data-camera="garden"]');
  await shot(page, 'onvif-renamed');

  step('save what the pages showed');
  await writeFile(path.join(SHOTS, 'cameras.html'), await page.content());
  const api = await (await page.request.get(`${ADMIN}/api/cameras`)).text();
  await writeFile(path.join(SHOTS, 'api-cameras.json'), api);
  assert.match(api, /"has_password":true/);
  console.log('done');
} catch (e) {
  for (const ctx of browser.contexts()) {
    for (const p of ctx.pages()) {
      console.log(`failed on ${p.url()}: flash ${JSON.stringify(await p.textContent('#flash').catch(() => null))}`);
      await shot(p, 'onvif-failure').catch(() => {});
    }
  }
  throw e;
} finally {
  await browser.close();
}
