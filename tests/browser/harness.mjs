// What the browser tests share: their argument parsing, the check counter,
// Debian's headless Chromium through playwright-core (a fresh user data dir,
// no browser download) with the page's uncaught and console errors
// collected, and the closing checks and exit status.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

let failures = 0;

export function check(cond, what) {
  if (cond) console.log(`ok: ${what}`);
  else { failures++; console.error(`FAIL: ${what}`); }
  return cond;
}

/* --name value pairs and --no-name flags over defaults; --url and --model required. */
export function parseArgs(script, defaults) {
  const args = { ...defaults };
  for (let i = 2; i < process.argv.length; i++) {
    const a = process.argv[i];
    if (a.startsWith('--no-')) { args[a.slice(5)] = false; continue; }
    if (!a.startsWith('--') || i + 1 >= process.argv.length) { console.error(`${script}: bad argument ${a}`); process.exit(2); }
    args[a.slice(2)] = process.argv[++i];
  }
  if (!args.url || !args.model) { console.error(`${script}: --url and --model are required`); process.exit(2); }
  return args;
}

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run'];

/* Chromium at args.chromium with a page whose timeouts are args.timeout ms.
 * finish(script) runs the closing checks, closes the browser and exits. */
export async function launch(args) {
  const timeout = Number(args.timeout);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gtmsm-chromium-'));
  let context;
  try {
    // launchPersistentContext passes the fresh --user-data-dir itself
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: args.chromium, headless: true, args: FLAGS, viewport: { width: 1360, height: 1000 },
      timeout,
    });
  } catch (e) {
    console.error(`FAIL: Chromium (${args.chromium}) did not start: ${e.message}`);
    fs.rmSync(userDataDir, { recursive: true, force: true });
    process.exit(1);
  }
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(timeout);
  const pageErrors = [], consoleErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  async function finish(script) {
    check(pageErrors.length === 0, `no uncaught errors in the page${pageErrors.length ? ': ' + pageErrors.join(' | ') : ''}`);
    check(consoleErrors.length === 0, `no console errors${consoleErrors.length ? ': ' + consoleErrors.join(' | ') : ''}`);
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
    console.log(`${script}: ${failures} failure(s)`);
    process.exit(failures ? 1 : 0);
  }
  return { context, page, pageErrors, consoleErrors, finish, timeout };
}
