// The dashboard in headless Chromium (issue 5): Debian's chromium driven by playwright-core,
// against the real `stockstream run --synthetic` serving the built front end.
//
// Checks: the page loads with no console errors; live ticks appear within 2 s; a watchlist
// add/remove survives a reload; an injected anomaly (from the generator's ground truth) shows
// in the feed and on the chart; pause stops updates and resume restarts them; alerts are the
// feed's default tab, expand to their ticks, and an open one updates in place; the phone-width
// layout does not scroll sideways; a symbol that stops in a file replay is marked stale.
// Screenshots go to dashboard/e2e/artifacts/ (not committed).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const artifacts = join(here, 'artifacts');
const binary = join(root, 'target', 'release', 'stockstream');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

let server;
let browser;
let baseUrl;
let outputs;
const consoleProblems = [];

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

async function waitFor(what, check, timeoutMs = 10_000, everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function newPage() {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') {
      consoleProblems.push(`${message.type()}: ${message.text()}`);
    }
  });
  page.on('pageerror', (error) => consoleProblems.push(`pageerror: ${error.message}`));
  return page;
}

const ticksShown = async (page) => Number(await page.textContent('[data-testid=ticks-shown]'));
const tiles = async (page) =>
  (await page.$$eval('[data-testid=tile]', (nodes) => nodes.map((n) => n.dataset.symbol))).sort();

before(async () => {
  assert.ok(existsSync(binary), `${binary} is missing: run \`make build\` first`);
  assert.ok(existsSync(join(root, 'dashboard', 'dist', 'index.html')), 'the front end is not built: bash dashboard/build.sh');
  mkdirSync(artifacts, { recursive: true });
  outputs = mkdtempSync(join(tmpdir(), 'stockstream-e2e-'));
  const port = await freePort();
  // 100 ticks/s of real time over 5 symbols, 2% of them injected jumps: anomalies within seconds.
  server = spawn(binary, [
    'run', '--synthetic', '--rate', '100', '--seed', '11', '--anomaly-rate', '0.02',
    '--outputs', outputs, '--listen', `127.0.0.1:${port}`, '--commit-interval', '1s',
  ], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  server.stderr.on('data', (chunk) => { log += chunk; });
  await waitFor('the dashboard line', () => log.includes('dashboard at http://'), 60_000);
  baseUrl = `http://127.0.0.1:${port}/`;
  // The dashboard is up before the chains have started (compiling the modules takes seconds
  // on a busy machine): the tests begin once ticks flow.
  await waitFor('ticks to flow', async () => {
    const metrics = await fetch(`${baseUrl}metrics`).then((r) => r.text()).catch(() => '');
    const ticks = /^stockstream_ticks_total (\d+)$/m.exec(metrics);
    return ticks && Number(ticks[1]) > 0;
  }, 60_000, 100);
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
});

test('loads live, with no console errors, and ticks appear within 2 s', async () => {
  const page = await newPage();
  await page.goto(baseUrl);
  await waitFor('the connection to be live', async () =>
    (await page.textContent('[data-testid=conn]'))?.trim() === 'live');
  const first = await ticksShown(page);
  await waitFor('new ticks', async () => (await ticksShown(page)) > first, 2_000);
  await waitFor('a tile with a price', async () => {
    const price = await page.$('[data-testid=tile] [data-testid=last-price]');
    return price && /\d/.test(await price.textContent());
  });
  await waitFor('the ticks/s KPI', async () =>
    Number((await page.textContent('[data-testid=kpi-ticks]')).replace(/[^\d.]/g, '')) > 0);
  await page.screenshot({ path: join(artifacts, 'live.png') });
  await page.close();
  assert.deepEqual(consoleProblems, []);
});

test('watchlist add and remove survive a reload', async () => {
  const page = await newPage();
  await page.goto(baseUrl);
  await waitFor('tiles', async () => (await tiles(page)).length > 0);
  const before = await tiles(page);
  const removed = before[0];
  await page.click(`[data-testid=remove][data-symbol="${removed}"]`);
  await waitFor('the tile to go', async () => !(await tiles(page)).includes(removed));
  // Add it back through the picker, then take another one away.
  await page.selectOption('[data-testid=add-symbol]', removed);
  await page.click('[data-testid=add-button]');
  await waitFor('the tile to come back', async () => (await tiles(page)).includes(removed));
  const second = (await tiles(page)).find((s) => s !== removed);
  await page.click(`[data-testid=remove][data-symbol="${second}"]`);
  await waitFor('the second tile to go', async () => !(await tiles(page)).includes(second));
  const expected = await tiles(page);
  await page.reload();
  await waitFor('tiles after the reload', async () => (await tiles(page)).length === expected.length);
  assert.deepEqual(await tiles(page), expected);
  await page.screenshot({ path: join(artifacts, 'watchlist.png') });
  await page.close();
  assert.deepEqual(consoleProblems, []);
});

test('an injected anomaly shows in the feed and on the chart', async () => {
  const page = await newPage();
  await page.goto(baseUrl);
  await page.click('[data-testid=tab-anomalies]');
  const truthFile = join(outputs, 'synthetic_truth.jsonl');
  const injected = () => new Set(
    (existsSync(truthFile) ? readFileSync(truthFile, 'utf8') : '')
      .split('\n').filter(Boolean).map((line) => {
        const t = JSON.parse(line);
        return `${t.symbol}@${t.ts}`;
      }));
  // A feed row whose (symbol, ts) the generator injected.
  const item = await waitFor('an injected anomaly in the feed', async () => {
    const truth = injected();
    const rows = await page.$$eval('[data-testid=anomaly-item]',
      (nodes) => nodes.map((n) => ({ symbol: n.dataset.symbol, ts: n.dataset.ts })));
    return rows.find((r) => truth.has(`${r.symbol}@${r.ts}`));
  }, 30_000, 200);
  await page.click(`[data-testid=anomaly-item][data-symbol="${item.symbol}"][data-ts="${item.ts}"]`);
  await waitFor('the chart to focus the anomaly\'s symbol', async () =>
    (await page.getAttribute('[data-testid=chart]', 'data-symbol')) === item.symbol);
  await waitFor('a marker on the chart', async () =>
    (await page.$$('[data-testid=chart] [data-testid=anomaly-marker]')).length > 0);
  assert.ok(await page.$('[data-testid=chart] [data-testid=price-line]'));
  await page.screenshot({ path: join(artifacts, 'anomaly.png') });
  await page.close();
  assert.deepEqual(consoleProblems, []);
});

test('pause stops updates and resume restarts them', async () => {
  const page = await newPage();
  await page.goto(baseUrl);
  await waitFor('live', async () => (await page.textContent('[data-testid=conn]'))?.trim() === 'live');
  await waitFor('ticks', async () => (await ticksShown(page)) > 0);
  await page.click('[data-testid=pause]');
  assert.equal((await page.textContent('[data-testid=pause]')).trim(), 'Resume');
  const frozen = await ticksShown(page);
  const frozenPrices = await page.$$eval('[data-testid=last-price]', (n) => n.map((x) => x.textContent));
  await new Promise((r) => setTimeout(r, 1_500));
  assert.equal(await ticksShown(page), frozen, 'nothing moves while paused');
  assert.deepEqual(await page.$$eval('[data-testid=last-price]', (n) => n.map((x) => x.textContent)), frozenPrices);
  await page.screenshot({ path: join(artifacts, 'paused.png') });
  await page.click('[data-testid=pause]');
  assert.equal((await page.textContent('[data-testid=pause]')).trim(), 'Pause');
  await waitFor('updates after resume', async () => (await ticksShown(page)) > frozen, 2_000);
  await page.close();
  assert.deepEqual(consoleProblems, []);
});

const alertRows = (page) => page.$$eval('[data-testid=alert-item]', (nodes) => nodes.map((n) => ({
  id: n.dataset.id, count: Number(n.dataset.count), status: n.dataset.status,
})));

test('alerts are the default feed, expand to their ticks, and an open one updates in place', async () => {
  const page = await newPage();
  await page.goto(baseUrl);
  assert.equal(await page.getAttribute('[data-testid=tab-alerts]', 'aria-selected'), 'true');
  const open = await waitFor('an open alert', async () =>
    (await alertRows(page)).find((a) => a.status === 'open'), 30_000, 200);
  // The server agrees on it.
  const served = await fetch(`${baseUrl}api/alerts`).then((r) => r.json());
  assert.ok(served.some((a) => a.id === open.id), 'the alert is in /api/alerts');
  const row = `[data-testid=alert-item][data-id="${open.id}"]`;
  await page.click(`${row} button`);
  const ticks = await waitFor('the alert\'s ticks', async () =>
    (await page.$$(`${row} [data-testid=alert-tick]`)).length);
  assert.ok(ticks >= 1);
  // Anomalies keep coming within the 1 min cooldown: the same row grows (or closes), never a
  // second row for the same alert.
  const grown = await waitFor('the open alert to grow', async () =>
    (await alertRows(page)).find((a) => a.id === open.id && (a.count > open.count || a.status === 'closed')),
  30_000, 200);
  assert.ok(grown);
  assert.equal((await alertRows(page)).filter((a) => a.id === open.id).length, 1);
  // Still expanded after the update, with the new ticks.
  assert.ok((await page.$$(`${row} [data-testid=alert-tick]`)).length >= Math.min(grown.count, 100) - 1);
  await page.screenshot({ path: join(artifacts, 'alerts.png') });
  await page.close();
  assert.deepEqual(consoleProblems, []);
});

test('the event-time clock shows the run\'s time', async () => {
  const page = await newPage();
  await page.goto(baseUrl);
  await waitFor('an event clock', async () =>
    /^\d\d:\d\d:\d\d/.test((await page.textContent('[data-testid=event-clock]')).trim()));
  await page.close();
});

test('phone width: no horizontal overflow', async () => {
  const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
  await page.goto(baseUrl);
  await waitFor('tiles', async () => (await tiles(page)).length > 0);
  await waitFor('an alert', async () => (await alertRows(page)).length > 0, 30_000, 200);
  const { scroll, client } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
  }));
  await page.screenshot({ path: join(artifacts, 'phone.png'), fullPage: true });
  assert.ok(scroll <= client, `page is ${scroll}px wide in a ${client}px viewport`);
  await page.close();
});

test('a symbol with no tick for longer than --stale-after is marked stale (file replay)', async () => {
  // BBB stops after 30 s of event time, AAA goes on for 3 min: BBB is 2.5 min behind.
  const dir = mkdtempSync(join(tmpdir(), 'stockstream-e2e-stale-'));
  const t0 = Date.UTC(2026, 0, 2, 14, 30);
  const lines = [];
  for (let s = 0; s < 180; s += 1) {
    lines.push(JSON.stringify({ symbol: 'AAA', ts: t0 + s * 1000, price: 100 + (s % 3) * 0.01, volume: 10 }));
    if (s < 30) lines.push(JSON.stringify({ symbol: 'BBB', ts: t0 + s * 1000 + 500, price: 50, volume: 10 }));
  }
  const input = join(dir, 'ticks.jsonl');
  writeFileSync(input, `${lines.join('\n')}\n`);
  const port = await freePort();
  const replay = spawn(binary, [
    'run', '--input', input, '--speed', 'max', '--outputs', join(dir, 'outputs'),
    '--listen', `127.0.0.1:${port}`, '--stale-after', '1m',
  ], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  replay.stderr.on('data', (chunk) => { log += chunk; });
  try {
    await waitFor('the dashboard line', () => log.includes('dashboard at http://'), 60_000);
    const url = `http://127.0.0.1:${port}/`;
    await waitFor('the stale gauge', async () => {
      const metrics = await fetch(`${url}metrics`).then((r) => r.text()).catch(() => '');
      return /^stockstream_dashboard_stale_symbols 1$/m.test(metrics);
    }, 60_000, 200);
    const page = await newPage();
    await page.goto(url);
    await waitFor('BBB marked stale', async () =>
      (await page.getAttribute('[data-testid=tile][data-symbol=BBB]', 'data-stale')) === 'true', 10_000);
    assert.equal(await page.getAttribute('[data-testid=tile][data-symbol=AAA]', 'data-stale'), 'false');
    await page.screenshot({ path: join(artifacts, 'stale.png') });
    await page.close();
  } finally {
    replay.kill('SIGTERM');
  }
  assert.deepEqual(consoleProblems, []);
});

test('the replay buttons set the pace of event time, and hold stops it (file replay)', async () => {
  // The intraday sample at 10x: its ticks are 15 s apart in event time, 1.5 s apart here.
  const dir = mkdtempSync(join(tmpdir(), 'stockstream-e2e-replay-'));
  const port = await freePort();
  const replay = spawn(binary, [
    'run', '--speed', '10', '--outputs', join(dir, 'outputs'), '--listen', `127.0.0.1:${port}`,
  ], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  replay.stderr.on('data', (chunk) => { log += chunk; });
  const url = `http://127.0.0.1:${port}/`;
  const api = async () => (await fetch(`${url}api/replay`)).json();
  try {
    await waitFor('the dashboard line', () => log.includes('dashboard at http://'), 60_000);
    const page = await newPage();
    await page.goto(url);
    const clock = async () => Number(await page.getAttribute('[data-testid=event-clock]', 'data-ts'));
    await waitFor('the event clock', async () => (await clock()) > 0, 60_000, 100);
    await waitFor('the replay buttons', async () =>
      (await page.getAttribute('[data-testid=speed-10]', 'aria-pressed')) === 'true');
    // Event seconds per real second over a 3 s window (the clock comes with the KPI message,
    // once a second).
    const pace = async () => {
      const [t0, c0] = [Date.now(), await clock()];
      await new Promise((r) => setTimeout(r, 3_000));
      return (await clock() - c0) / (Date.now() - t0);
    };
    const at10 = await pace();
    assert.ok(at10 > 2 && at10 < 30, `at 10x event time ran ${at10.toFixed(1)}x`);

    await page.click('[data-testid=speed-100]');
    assert.deepEqual(await api(), { speed: 100, paused: false });
    await waitFor('100x lit', async () =>
      (await page.getAttribute('[data-testid=speed-100]', 'aria-pressed')) === 'true');
    const at100 = await pace();
    assert.ok(at100 > 40 && at100 < 300, `at 100x event time ran ${at100.toFixed(1)}x`);

    await page.click('[data-testid=replay-pause]');
    assert.deepEqual(await api(), { speed: 100, paused: true });
    await new Promise((r) => setTimeout(r, 1_500));
    const held = await pace();
    assert.equal(held, 0, `held, event time still ran ${held.toFixed(2)}x`);
    await page.screenshot({ path: join(artifacts, 'replay-held.png') });

    await page.click('[data-testid=replay-pause]');
    const resumed = await pace();
    assert.ok(resumed > 40, `resumed at 100x, event time ran ${resumed.toFixed(1)}x`);
    await page.click('[data-testid=speed-max]');
    assert.deepEqual(await api(), { speed: null, paused: false });
    console.log(`event time per real time: 10x ${at10.toFixed(1)}, 100x ${at100.toFixed(1)}, held ${held}, resumed ${resumed.toFixed(1)}`);
    await page.close();
  } finally {
    replay.kill('SIGTERM');
  }
  assert.deepEqual(consoleProblems, []);
});
