// Drives the gtmsmd web viewer in Debian's headless Chromium through
// playwright-core (no browser download): loads the page, picks a model and a
// demo world, runs the memorization, drives with the arrow keys and the
// on-screen buttons, and checks what a person would see: the memorized
// frames, the state trajectory, predicted frames that appear and change, the
// true frames, a PSNR per step; then that a server error is shown clearly.
// Saves a screenshot. Exits non-zero on any failure, printing every check.
//
//   node viewer.mjs --url http://127.0.0.1:PORT/ --model NAME --screenshot OUT.png
//                   [--world procedural|photo] [--seed N] [--photo INDEX] [--steps N]
//                   [--speed fast|watch] [--keys ArrowLeft,ArrowUp,...] [--no-error-check]
//                   [--obstacles N] [--max-fit-rms CELLS]
// With --obstacles the demo world has N blocked cells: they are drawn, the
// page's true position never enters one, and with --max-fit-rms the learned
// path (the states the session stored) fits the true one to that rms.
import fs from 'node:fs';
import path from 'node:path';

import { check, launch, parseArgs } from './harness.mjs';

const args = parseArgs('viewer.mjs', {
  url: null, model: null, screenshot: null, world: 'procedural', seed: '3', photo: null, steps: '96',
  keys: 'ArrowLeft,ArrowLeft,ArrowUp,ArrowUp,ArrowRight,ArrowDown,ArrowRight,ArrowRight,ArrowDown,ArrowDown,s',
  speed: 'fast', 'error-check': true, chromium: '/usr/bin/chromium', timeout: '30000', obstacles: '0',
  'max-fit-rms': null,
});
const { page, consoleErrors, finish } = await launch(args);

const summary = () => page.evaluate(() => window.gtmsmViewer.summary());
const text = (sel) => page.locator(sel).innerText();
const phase = () => page.evaluate(() => document.body.dataset.phase);

try {
  // ---- the page and the pickers -------------------------------------------
  const resp = await page.goto(args.url, { waitUntil: 'load' });
  check(resp && resp.status() === 200, `GET ${args.url}: ${resp && resp.status()}`);
  check((await page.title()) === 'GTMSM viewer', 'the page title is "GTMSM viewer"');
  await page.waitForFunction(() => ['idle', 'error'].includes(document.body.dataset.phase));
  check((await phase()) === 'idle', `the page loaded the models (phase ${await phase()}, status "${await text('#status')}")`);
  const models = await page.locator('#model option').evaluateAll((os) => os.map((o) => o.value));
  check(models.includes(args.model), `the model picker lists ${args.model} (${models.join(', ')})`);
  const photos = await page.locator('#photo option').count();
  check(photos > 0, `the photo picker lists the bundled photo worlds (${photos})`);
  await page.selectOption('#model', args.model);
  check((await text('#model-info')).includes('version'), `model details shown: "${await text('#model-info')}"`);
  if (args.world === 'photo') {
    await page.check('#world-photo');
    if (args.photo !== null) await page.selectOption('#photo', String(args.photo));
  } else {
    await page.fill('#seed', String(args.seed));
    await page.check('#world-procedural');
  }
  await page.fill('#steps', String(args.steps));
  await page.fill('#obstacles', String(args.obstacles));
  await page.selectOption('#speed', args.speed);

  // ---- memorization ---------------------------------------------------------
  const t0 = Date.now();
  await page.click('#run');
  await page.waitForFunction(() => ['driving', 'error'].includes(document.body.dataset.phase));
  const steps = Number(args.steps);
  let s = await summary();
  const memError = s.phase === 'driving' ? '' : `; error shown: "${(await text('#error')).replace(/\s+/g, ' ')}"`;
  check(s.phase === 'driving', `memorization finished in ${Date.now() - t0} ms (phase ${s.phase}${memError})`);
  check(s.memorized === steps && s.memStates === steps,
        `${s.memorized} frames memorized with ${s.memStates} states of the learned trajectory`);
  check(s.cropMismatches === 0, `the page's 8x8 crops of the world equal the simulator's ${steps} frames ` +
        `(mismatches: ${s.cropMismatches})`);
  check((await text('#mem-progress')).startsWith(`${steps} of ${steps} frames memorized`),
        `progress: "${await text('#mem-progress')}"`);
  const session = await page.evaluate(async (id) => (await fetch(`v1/sessions/${id}`)).json(), s.session);
  check(session.steps === steps && session.memory_entries === steps,
        `the session ${s.session} holds ${session.steps} steps, ${session.memory_entries} memory entries`);
  const blank = (sel) => page.evaluate((q) => {
    const c = document.querySelector(q);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let lit = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i]) lit++;
    return lit;
  }, sel);
  check(await blank('#mem-sheet') >= 64 * Math.min(steps, 256), 'the memorized frames are drawn in the contact sheet');
  check(await blank('#states') > 100, 'the learned state trajectory is drawn');
  check(await blank('#world') === 256 * 256, 'the world map is drawn');
  check(await blank('#true-frame') === 64, 'the true frame at the end of memorization is shown');
  const blocked = new Set(s.obstacles.map((c) => c.row * 9 + c.col));
  check(s.obstacles.length === Number(args.obstacles), `${s.obstacles.length} obstacle cells (asked ${args.obstacles})`);
  if (blocked.size) {
    // an obstacle cell is drawn dark: most of its 24x24-px square about the view's centre on the
    // 256-px map (8 px per world pixel; the paths drawn over it cover a few pixels)
    const dark = await page.evaluate((cells) => {
      const g = document.querySelector('#world').getContext('2d');
      return cells.filter((c) => {
        const d = g.getImageData((c.col * 3 + 4) * 8 - 12, (c.row * 3 + 4) * 8 - 12, 24, 24).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 90 && d[i + 1] < 90 && d[i + 2] < 90) n++;
        return n > 0.5 * 24 * 24;
      }).length;
    }, s.obstacles);
    check(dark === blocked.size, `the obstacle cells are drawn on the world map (${dark} of ${blocked.size})`);
  }
  if (args['max-fit-rms'] !== null)
    check(s.worldFitRms !== null && s.worldFitRms < Number(args['max-fit-rms']),
          `the learned path (the stored states) fits the true one: ${s.worldFitRms && s.worldFitRms.toFixed(3)} cells rms ` +
          `(< ${args['max-fit-rms']})`);

  // ---- driving --------------------------------------------------------------
  const keys = args.keys.split(',').filter(Boolean);
  let prev = null, changed = 0, moves = 0;
  for (let i = 0; i < keys.length; i++) {
    await page.keyboard.press(keys[i] === 's' ? 's' : keys[i]);
    await page.waitForSelector(`#drive-panel[data-steps="${i + 1}"]`);
    s = await summary();
    const step = s.steps[i];
    const psnrText = await text('#psnr');
    check(/^(∞|\d+(\.\d)?) dB$/.test(psnrText), `key ${keys[i]}: step ${i + 1} ${step.action} -> ` +
          `(${step.col}, ${step.row}), PSNR shown "${psnrText}"`);
    const shown = await page.evaluate(() => {
      const c = document.querySelector('#pred-frame');
      return Array.from(c.getContext('2d').getImageData(0, 0, 8, 8).data);
    });
    check(shown.length === 256 && shown.every((v, k) => v === step.pred[k]) && shown.some((v, k) => k % 4 === 3 && v === 255),
          `key ${keys[i]}: the predicted frame is on screen`);
    if (prev) {
      const differs = step.pred.some((v, k) => v !== prev.pred[k]);
      if (differs) changed++;
      if (step.col !== prev.col || step.row !== prev.row) moves++;
    }
    prev = step;
  }
  check(s.steps.every((x) => !blocked.has(x.row * 9 + x.col)), 'driving never enters an obstacle cell');
  check(changed >= Math.max(1, Math.floor((keys.length - 1) / 2)),
        `the predicted frame changed on ${changed} of ${keys.length - 1} later key presses (${moves} moved the agent)`);
  // an on-screen button drives too
  await page.click('.pad button[data-action="right"]');
  await page.waitForSelector(`#drive-panel[data-steps="${keys.length + 1}"]`);
  s = await summary();
  check(s.steps.length === keys.length + 1 && s.steps[keys.length].action === 'right', 'the → button drives one step');
  check(s.steps.every((x) => x.psnr === null || (x.psnr > 0 && x.psnr < 100)), `PSNR per step: ${s.steps.map((x) => x.psnr === null ? '∞' : x.psnr.toFixed(1)).join(' ')}`);
  check(await blank('#psnr-plot') > 500, 'the PSNR plot is drawn');
  check(await blank('#drive-strip') >= 64 * 2 * Math.min(16, s.steps.length), 'the strip of predicted and true frames is drawn');
  const after = await page.evaluate(async (id) => (await fetch(`v1/sessions/${id}`)).json(), s.session);
  check(after.steps === steps && after.memory_entries === steps, 'driving did not change the session');
  if (args.screenshot) {
    fs.mkdirSync(path.dirname(path.resolve(args.screenshot)), { recursive: true });
    await page.screenshot({ path: args.screenshot, fullPage: true });
    console.log(`screenshot: ${args.screenshot}`);
  }

  // ---- errors are shown -----------------------------------------------------
  if (args['error-check']) {
    // the session disappears behind the page's back: the next step is a 404
    await page.evaluate(async (id) => fetch(`v1/sessions/${id}`, { method: 'DELETE' }), s.session);
    await page.keyboard.press('ArrowUp');
    await page.waitForSelector('#error:not([hidden])');
    const err = await text('#error');
    check(/404/.test(err) && /session-not-found/.test(err), `a server problem is shown: "${err.replace(/\s+/g, ' ')}"`);
    consoleErrors.length = 0; // the page logs the error it shows, and the browser the failed request
    await page.click('#error-close');
    await page.fill('#steps', '5000');
    await page.click('#run');
    await page.waitForSelector('#error:not([hidden])');
    check(/2\.\.4096/.test(await text('#error')), `bad input is refused with a message: "${(await text('#error')).replace(/\s+/g, ' ')}"`);
    consoleErrors.length = 0;
  }
} catch (e) {
  check(false, `the browser run stopped: ${e.stack || e}`);
  if (args.screenshot) {
    const failed = args.screenshot.replace(/\.png$/, '') + '-failed.png';
    await page.screenshot({ path: failed, fullPage: true }).then(() => console.error(`screenshot of the failure: ${failed}`), () => {});
  }
}
await finish('viewer.mjs');
