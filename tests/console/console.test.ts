// The console in a real browser: the relay in dev mode (its simulated device paired to the
// demo child), Debian's headless Chromium driven by playwright-core. A parent opens the URL
// dev mode prints, sees the device online, clicks Lock and watches the chip go
// PENDING → DELIVERED → EXECUTED; a notification from the backend shows a toast; text from a
// device and from the backend that looks like HTML stays text; a phone-width page works from
// the keyboard; after a relay SIGKILL and restart the page comes back by itself.
//
// Chromium: `CHROMIUM_BIN`, else /usr/bin/chromium (scripts/deps.sh installs Debian's).
// Screenshots go to target/console-artifacts/ (CI keeps them); `SAFESTREAM_UPDATE_DOCS=1`
// also writes docs/console.png.
import { existsSync, mkdirSync, copyFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { io, type Socket } from 'socket.io-client';
import { Relay, SERVER_KEY, parentToken, until } from '../sio/harness';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const ARTIFACTS = join(ROOT, 'target', 'console-artifacts');
const XSS = '<img src=x onerror="window.__pwned=1">';

let relay: Relay;
let browser: Browser;
let consoleUrl: string;

function chromiumBin(): string {
  const bin = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
  if (!existsSync(bin)) throw new Error(`${bin} is missing: apt-get install chromium (scripts/deps.sh)`);
  return bin;
}

beforeAll(async () => {
  relay = await Relay.start({ SAFESTREAM_DEV: 'true', RUST_LOG: 'info' });
  await until('the console URL in the dev banner', () => /#token=\S+/.test(relay.log));
  const m = /(http:\/\/\S+\/#token=\S+)/.exec(relay.log);
  if (!m) throw new Error(`no console URL in: ${relay.log}`);
  consoleUrl = m[1];
  browser = await chromium.launch({
    executablePath: chromiumBin(),
    headless: true,
    // Root in a container: Chromium's sandbox needs user namespaces it may not have.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  mkdirSync(ARTIFACTS, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  await relay?.stop();
});

async function open(viewport = { width: 1280, height: 900 }): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(consoleUrl);
  return { page, errors };
}

describe('the console, from the URL dev mode prints', () => {
  it('signs in, shows the demo device online, and a Lock goes PENDING → DELIVERED → EXECUTED', async () => {
    const { page, errors } = await open();
    // The token left the address bar (it is kept in the tab's session storage).
    await page.waitForFunction(() => !location.hash.includes('token='));
    const child = page.getByTestId('child-demo-child');
    await child.waitFor({ timeout: 15_000 });
    const device = child.locator('[data-testid^="device-"]').first();
    await expect.poll(async () => (await device.innerText()).toLowerCase(), { timeout: 15_000 }).toContain('online');
    await expect.poll(async () => await device.innerText()).toContain('Ocean Explorers');

    // Record every status the chip shows, from before the click.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { __seen: string[] }).__seen = seen;
      const note = () => {
        const chip = document.querySelector('[data-testid="last-command-demo-child"]');
        const s = chip?.getAttribute('data-status') ?? chip?.querySelector('[data-status]')?.getAttribute('data-status');
        if (s && seen[seen.length - 1] !== s) seen.push(s);
      };
      new MutationObserver(note).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
    });
    await child.getByRole('button', { name: /^Lock\b/ }).click();
    const chip = page.getByTestId('last-command-demo-child');
    await expect
      .poll(async () => (await chip.getAttribute('data-status')) ?? (await chip.locator('[data-status]').first().getAttribute('data-status')), {
        timeout: 15_000,
      })
      .toBe('EXECUTED');
    await expect.poll(async () => await chip.innerText()).toContain('EXECUTED');
    const seen = await page.evaluate(() => (window as unknown as { __seen: string[] }).__seen);
    expect(seen[seen.length - 1]).toBe('EXECUTED');
    // The simulated device takes 700 ms: the steps before are visible, in order.
    expect(seen.indexOf('PENDING')).toBeLessThan(seen.indexOf('DELIVERED'));
    expect(seen).toContain('DELIVERED');
    // The trail under the chip names every step, PENDING included (it may last a few
    // milliseconds only: the device is on loopback).
    const trail = await page.getByTestId('last-trail-demo-child').innerText();
    expect(trail.replace(/\s+/g, ' ')).toMatch(/^PENDING → DELIVERED \+\d+ ms → EXECUTED \+\d+ ms$/);
    // And a toast says so.
    await page.getByTestId('toast').filter({ hasText: 'Lock done on Demo child' }).waitFor({ timeout: 5_000 });
    // The relay agrees.
    const cmds = await relay.ok('GET', '/api/dashboard/remote-control?childId=demo-child&limit=1', tokenFromUrl());
    expect(cmds.commands[0]).toMatchObject({ commandType: 'LOCK_DEVICE', status: 'EXECUTED' });
    // The simulated device reported itself not watching once locked.
    await expect
      .poll(async () => {
        const list = await relay.ok('GET', '/api/children/demo-child/devices', SERVER_KEY);
        return list.devices.find((x: { name: string }) => x.name === 'Demo device')?.activeViewing;
      })
      .toBe(false);

    await page.screenshot({ path: join(ARTIFACTS, 'console.png'), fullPage: true });
    if (process.env.SAFESTREAM_UPDATE_DOCS) copyFileSync(join(ARTIFACTS, 'console.png'), join(ROOT, 'docs', 'console.png'));
    expect(errors).toEqual([]);
    await page.close();
  });

  it('shows a toast for a notification from the backend, and HTML from a device or the backend as text', async () => {
    const { page, errors } = await open();
    await page.getByTestId('child-demo-child').waitFor({ timeout: 15_000 });
    await expect.poll(async () => await page.getByTestId('child-demo-child').innerText(), { timeout: 15_000 }).toMatch(/online/i);

    // A notification whose title is HTML: the toast shows it literally.
    await relay.ok('POST', '/api/dashboard/notifications', SERVER_KEY, {
      userId: 'demo-parent',
      type: 'RESTRICTED_CONTENT',
      title: `Blocked: ${XSS}`,
      message: 'A restricted video was blocked',
    });
    const toast = page.getByTestId('toast').filter({ hasText: 'Blocked:' });
    await toast.waitFor({ timeout: 10_000 });
    expect(await toast.innerText()).toContain(XSS);
    expect(await page.getByTestId('toasts').locator('img').count()).toBe(0);

    // A second device of the demo child reports a video whose title is HTML.
    const d = await relay.ok('POST', '/api/children/demo-child/devices', SERVER_KEY, { name: 'Mia <b>tablet</b>' });
    const sock: Socket = io(relay.url, { path: '/api/socket', auth: { token: d.token }, transports: ['websocket'] });
    try {
      await new Promise<void>((ok, fail) => {
        sock.once('ready', () => ok());
        sock.once('connect_error', fail);
      });
      sock.emit('device:status', { activeViewing: true, currentVideo: { title: XSS, url: 'javascript:alert(1)' } });
      const row = page.getByTestId(`device-${d.deviceId}`);
      await row.waitFor({ timeout: 15_000 });
      await expect.poll(async () => await row.innerText(), { timeout: 15_000 }).toContain(XSS);
      expect(await row.innerText()).toContain('Mia <b>tablet</b>');
      expect(await row.locator('img, b').count()).toBe(0);
      // A javascript: URL from a device is never a link.
      expect(await page.locator('a[href^="javascript:"]').count()).toBe(0);
    } finally {
      sock.close();
    }
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    await page.screenshot({ path: join(ARTIFACTS, 'console-toast.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('fits a phone screen and is usable from the keyboard (Pause, Show message)', async () => {
    const { page, errors } = await open({ width: 375, height: 740 });
    await page.getByTestId('child-demo-child').waitFor({ timeout: 15_000 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    // Tab reaches the Pause button of the demo child, and Enter sends it.
    const pause = page.getByTestId('child-demo-child').getByRole('button', { name: /^Pause\b/ });
    let reached = false;
    for (let i = 0; i < 60 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await pause.evaluate((el) => el === document.activeElement);
    }
    expect(reached).toBe(true);
    await page.keyboard.press('Enter');
    const chip = page.getByTestId('last-command-demo-child');
    await expect.poll(async () => await chip.innerText(), { timeout: 15_000 }).toContain('EXECUTED');
    // It was this page's Pause that ran (not an older command's chip).
    const cmds = await relay.ok('GET', '/api/dashboard/remote-control?childId=demo-child&limit=1', tokenFromUrl());
    expect(cmds.commands[0]).toMatchObject({ commandType: 'PAUSE', status: 'EXECUTED' });

    // Show message from the keyboard: the button opens a labelled field that takes the focus;
    // Enter sends it, and the focus goes back to the button.
    const show = page.getByTestId('child-demo-child').getByRole('button', { name: /^Show message\b/ });
    await show.focus();
    await page.keyboard.press('Enter');
    const field = page.getByLabel("Message to show on Demo child's devices");
    await expect.poll(async () => await field.evaluate((el) => el === document.activeElement)).toBe(true);
    await page.keyboard.type('Dinner is ready');
    await page.keyboard.press('Enter');
    await expect.poll(async () => await show.evaluate((el) => el === document.activeElement)).toBe(true);
    await expect.poll(async () => await chip.innerText(), { timeout: 15_000 }).toContain('EXECUTED');
    await expect
      .poll(async () => (await relay.ok('GET', '/api/dashboard/remote-control?childId=demo-child&limit=1', tokenFromUrl())).commands[0], { timeout: 15_000 })
      .toMatchObject({ commandType: 'SHOW_MESSAGE', status: 'EXECUTED', payload: { message: 'Dinner is ready' } });
    await page.screenshot({ path: join(ARTIFACTS, 'console-phone.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('a bad token gets a clear message and no access: not a JWT at sign-in, a forged one refused by the relay', async () => {
    const page = await browser.newPage();
    try {
      // Not a JWT in the address: ignored, the sign-in form shows.
      await page.goto(`${relay.url}/#token=not-a-token`);
      const form = page.getByTestId('signin');
      await form.waitFor({ timeout: 10_000 });
      expect(page.url()).not.toContain('token=');
      await form.getByRole('textbox').fill('still not a token');
      await form.getByRole('button').first().click();
      await expect.poll(async () => await form.innerText()).toContain('That is not a JWT');
      // Well-formed, signed with another secret: the relay refuses it, the page says so and shows nothing.
      const forged = parentToken('demo-parent', 3600, 'another-secret-0123456789abcdef0123456789');
      await page.goto(`${relay.url}/#token=${forged}`);
      await page.reload();
      await expect.poll(async () => await page.getByTestId('connection-state').getAttribute('data-state'), { timeout: 15_000 }).toBe('unauthorized');
      await expect.poll(async () => await page.getByRole('alert').first().innerText()).toContain('refused this token');
      expect(await page.getByTestId('child-demo-child').count()).toBe(0);
    } finally {
      await page.close();
    }
  });

  // Last: it restarts the relay under the page.
  it('comes back by itself after a relay SIGKILL and restart: connected, the device online, a command runs', async () => {
    const { page } = await open();
    const conn = page.getByTestId('connection-state');
    const child = page.getByTestId('child-demo-child');
    await expect.poll(async () => await conn.getAttribute('data-state'), { timeout: 15_000 }).toBe('connected');
    await expect.poll(async () => (await child.innerText()).toLowerCase(), { timeout: 15_000 }).toContain('online');

    await relay.kill();
    await expect.poll(async () => await conn.getAttribute('data-state'), { timeout: 15_000 }).toBe('reconnecting');
    await relay.spawn(); // same port, same database; the simulated device starts with it
    await expect.poll(async () => await conn.getAttribute('data-state'), { timeout: 30_000 }).toBe('connected');
    const device = child.locator('[data-testid^="device-"]').first();
    await expect.poll(async () => (await device.innerText()).toLowerCase(), { timeout: 15_000 }).toMatch(/\bonline\b/);

    await child.getByRole('button', { name: 'Unlock', exact: true }).click();
    const chip = page.getByTestId('last-command-demo-child');
    await expect.poll(async () => await chip.innerText(), { timeout: 15_000 }).toContain('EXECUTED');
    const cmds = await relay.ok('GET', '/api/dashboard/remote-control?childId=demo-child&limit=1', tokenFromUrl());
    expect(cmds.commands[0]).toMatchObject({ commandType: 'UNLOCK_DEVICE', status: 'EXECUTED' });
    await page.close();
  });
});

function tokenFromUrl(): string {
  return decodeURIComponent(consoleUrl.split('#token=')[1]);
}
