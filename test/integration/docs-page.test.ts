/**
 * /docs in a real browser: headless Chromium (Debian's `chromium`; `.ci/run` installs it) loads
 * the page from a running server with every host name but the loopback address unresolvable, so
 * the page must work offline (no CDN). The rendered DOM carries Strata's name and every
 * operation and no framework branding; the screenshot is a real rendering (the title's colour is
 * in it), kept for inspection when the test fails.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { inflateSync } from 'node:zlib';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OPERATIONS } from '../../src/server/openapi.js';
import { startHarness } from './http-harness.js';

const run = promisify(execFile);
const WIDTH = 1280;
const HEIGHT = 1000;
/** The title colour of Strata's docs stylesheet (src/server/openapi.ts), #1f3b57. */
const TITLE_RGB = [0x1f, 0x3b, 0x57] as const;

function findChromium(): string {
  for (const name of [process.env.CHROMIUM, 'chromium', 'chromium-browser', 'google-chrome'].filter((n): n is string => !!n)) {
    try {
      execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'pipe' });
      return name;
    } catch {
      // Not this one.
    }
  }
  return assert.fail('no Chromium on PATH: install it (apt-get install -y chromium; .ci/run does) or set CHROMIUM');
}

/** Headless, offline: no first-run work, no background or component networking, no name but 127.0.0.1 resolves. */
function chromiumArgs(profile: string): string[] {
  return [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    `--user-data-dir=${profile}`,
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-extensions',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-default-apps',
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    '--hide-scrollbars',
    `--window-size=${WIDTH},${HEIGHT}`,
    // Virtual time runs the page's scripts (swagger-ui renders client-side) before the capture.
    '--virtual-time-budget=15000',
  ];
}

/** Width, height and RGB pixels of an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes). */
function decodePng(png: Buffer): { width: number; height: number; pixel(x: number, y: number): [number, number, number] } {
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  let offset = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString('latin1', offset + 4, offset + 8);
    const data = png.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      assert.equal(data[8], 8, 'bit depth 8');
      assert.equal(data[12], 0, 'not interlaced');
      channels = data[9] === 6 ? 4 : data[9] === 2 ? 3 : assert.fail(`colour type ${data[9]}`);
    } else if (type === 'IDAT') idat.push(data);
    offset += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    for (let x = 0; x < stride; x++) {
      const value = raw[y * (stride + 1) + 1 + x]!;
      const left = x >= channels ? out[y * stride + x - channels]! : 0;
      const up = y > 0 ? out[(y - 1) * stride + x]! : 0;
      const upLeft = y > 0 && x >= channels ? out[(y - 1) * stride + x - channels]! : 0;
      const p = left + up - upLeft;
      const paeth = Math.abs(p - left) <= Math.abs(p - up) && Math.abs(p - left) <= Math.abs(p - upLeft) ? left : Math.abs(p - up) <= Math.abs(p - upLeft) ? up : upLeft;
      const predicted = [0, left, up, (left + up) >> 1, paeth][filter] ?? assert.fail(`filter ${filter}`);
      out[y * stride + x] = (value + predicted) & 0xff;
    }
  }
  return { width, height, pixel: (x, y) => [out[y * stride + x * channels]!, out[y * stride + x * channels + 1]!, out[y * stride + x * channels + 2]!] };
}

test('/docs renders offline in headless Chromium with Strata\'s name, every operation and no framework branding', { timeout: 120_000 }, async (t) => {
  const chromium = findChromium();
  const { app } = await startHarness(t);
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const dir = await mkdtemp(join(tmpdir(), 'strata-docs-page-'));
  const screenshot = join(dir, 'docs.png');
  let passed = false;
  t.after(async () => {
    if (!passed) {
      t.diagnostic(`screenshot kept at ${screenshot}`);
      return;
    }
    await rm(dir, { recursive: true, force: true });
  });

  const [dom] = await Promise.all([
    run(chromium, [...chromiumArgs(join(dir, 'profile-dom')), '--dump-dom', `${base}/docs`], { maxBuffer: 64 * 1024 * 1024 }).then((r) => r.stdout),
    run(chromium, [...chromiumArgs(join(dir, 'profile-shot')), `--screenshot=${screenshot}`, `${base}/docs`]),
  ]);

  // assert.ok, not assert.match: a failure names the check instead of printing the whole page.
  assert.ok(/<title>Strata API<\/title>/.test(dom), 'the page title');
  assert.ok(/<h[12] class="title">Strata/.test(dom), 'the API title was rendered by the page\'s scripts');
  for (const { operationId } of Object.values(OPERATIONS)) assert.ok(dom.includes(operationId), `operation ${operationId} is on the page`);
  assert.ok(/rel="icon" type="image\/svg\+xml" href="[^"]*theme\/strata\.svg"/.test(dom), 'Strata\'s icon');
  const text = dom.replace(/<script[\s\S]*?<\/script>/g, '').replace(/<style[\s\S]*?<\/style>/g, '').replace(/<[^>]+>/g, ' ');
  assert.deepEqual(text.match(/\S*(swagger|smartbear)\S*/gi) ?? [], [], 'no framework branding in the page\'s text');
  assert.ok(!dom.includes('class="topbar"'), 'no framework top bar');

  const png = decodePng(await readFile(screenshot));
  assert.deepEqual([png.width, png.height], [WIDTH, HEIGHT]);
  // The title, in Strata's colour, is in the top of the page.
  let titlePixels = 0;
  const colours = new Set<number>();
  for (let y = 0; y < 160; y++) {
    for (let x = 0; x < WIDTH / 2; x++) {
      const [r, g, b] = png.pixel(x, y);
      colours.add((r << 16) | (g << 8) | b);
      if (Math.abs(r - TITLE_RGB[0]) <= 8 && Math.abs(g - TITLE_RGB[1]) <= 8 && Math.abs(b - TITLE_RGB[2]) <= 8) titlePixels++;
    }
  }
  assert.ok(titlePixels > 200, `${titlePixels} pixels of the title colour`);
  assert.ok(colours.size > 20, `${colours.size} colours: a rendered page, not a blank one`);
  passed = true;
});
