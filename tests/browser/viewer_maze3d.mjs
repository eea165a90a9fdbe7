// Drives the web viewer's first-person mode (a maze3d model) in Debian's
// headless Chromium through playwright-core: picks the maze3d model (the page
// switches to the first-person controls), memorizes a demo episode, turns
// with the arrow keys and the on-screen buttons, and checks what a person
// would see: a predicted and a true frame per key press (the true one is the
// daemon's POST v1/demo/episodes/step), the PSNR and its plot, the heading
// dial moving with the true heading; that keys the scenario does not allow do
// nothing; that errors are shown; that picking a 2-D model goes back to the
// 2-D mode. Saves a screenshot. Exits non-zero on any failure, printing every
// check.
//
//   node viewer_maze3d.mjs --url http://127.0.0.1:PORT/ --model NAME --screenshot OUT.png
//                          [--model2d NAME] [--seed N] [--steps N] [--speed fast|watch]
//                          [--keys ArrowLeft,ArrowRight,...] [--no-error-check]
import fs from 'node:fs';
import path from 'node:path';

import { check, launch, parseArgs } from './harness.mjs';

const args = parseArgs('viewer_maze3d.mjs', {
  url: null, model: null, model2d: null, screenshot: null, seed: '3', steps: null, speed: 'fast',
  keys: 'ArrowLeft,ArrowLeft,ArrowLeft,ArrowRight,ArrowLeft,ArrowLeft,ArrowLeft,ArrowLeft,ArrowLeft,ArrowRight',
  'error-check': true, chromium: '/usr/bin/chromium', timeout: '60000',
});
const { page, consoleErrors, finish } = await launch(args);

const summary = () => page.evaluate(() => window.gtmsmViewer.summary());
const text = (sel) => page.locator(sel).innerText();
const pixels = (sel) => page.evaluate((q) => {
  const c = document.querySelector(q);
  return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
}, sel);
const lit = (px) => { let n = 0; for (let i = 3; i < px.length; i += 4) if (px[i]) n++; return n; };
const same = (a, b) => a.length === b.length && a.every((v, k) => v === b[k]);
const wrapDeg = (d) => ((d % 360) + 540) % 360 - 180;

try {
  // ---- the page switches to the first-person mode ---------------------------
  const resp = await page.goto(args.url, { waitUntil: 'load' });
  check(resp && resp.status() === 200, `GET ${args.url}: ${resp && resp.status()}`);
  await page.waitForFunction(() => ['idle', 'error'].includes(document.body.dataset.phase));
  const models = await page.locator('#model option').evaluateAll((os) => os.map((o) => o.value));
  check(models.includes(args.model), `the model picker lists ${args.model} (${models.join(', ')})`);
  await page.selectOption('#model', args.model);
  const info = await page.evaluate(async (name) => (await fetch(`v1/models/${name}`)).json(), args.model);
  check(info.environment === 'maze3d', `${args.model} is a maze3d model (scenario ${info.training && info.training.scenario})`);
  check(await page.evaluate(() => document.body.dataset.env) === 'maze3d', 'the page is in the first-person mode');
  check(await page.locator('#maze-seed').isVisible() && !(await page.locator('#world-procedural').isVisible()) &&
        await page.locator('#heading-panel').isVisible() && await page.locator('.pad3d').isVisible() &&
        !(await page.locator('.pad2d').isVisible()),
        'the maze seed, the heading dial and the maze pad are shown; the 2-D world controls and pad are not');
  const steps = Number(args.steps || info.training.episode);
  check(Number(await page.inputValue('#steps')) === info.training.episode,
        `Memorize defaults to the model's episode length (${await page.inputValue('#steps')})`);
  check((await text('#maze-info')).includes(`scenario ${info.training.scenario}`), `maze info: "${await text('#maze-info')}"`);
  await page.fill('#maze-seed', String(args.seed));
  await page.fill('#steps', String(steps));
  await page.selectOption('#speed', args.speed);

  // ---- memorization ---------------------------------------------------------
  const t0 = Date.now();
  await page.click('#run');
  await page.waitForFunction(() => ['driving', 'error'].includes(document.body.dataset.phase));
  let s = await summary();
  const memError = s.phase === 'driving' ? '' : `; error shown: "${(await text('#error')).replace(/\s+/g, ' ')}"`;
  check(s.phase === 'driving', `memorization finished in ${Date.now() - t0} ms (phase ${s.phase}${memError})`);
  check(s.env === 'maze3d' && s.frame[0] === info.frame_width && s.frame[1] === info.frame_height,
        `a maze3d run with ${s.frame && s.frame.join('x')} frames`);
  check(s.memorized === steps && s.memStates === steps, `${s.memorized} frames memorized with ${s.memStates} states`);
  check((await text('#mem-progress')).startsWith(`${steps} of ${steps} frames memorized`),
        `progress: "${await text('#mem-progress')}"`);
  const session = await page.evaluate(async (id) => (await fetch(`v1/sessions/${id}`)).json(), s.session);
  check(session.steps === steps && session.memory_entries === steps,
        `the session ${s.session} holds ${session.steps} steps, ${session.memory_entries} memory entries`);
  const F = info.frame_width * info.frame_height;
  check(lit(await pixels('#mem-sheet')) >= F * Math.min(steps, 256), 'the memorized frames are drawn in the contact sheet');
  const map = await pixels('#world');
  check(lit(map) === map.length / 4, 'the top-down map is drawn');
  check(lit(await pixels('#states')) > 100, 'the learned state trajectory is drawn');
  // the learned path on the map: fitted for a walker, none for an agent that only turns
  const fitText = await text('#map-fit');
  check(info.training.scenario === 'rotate' ? fitText === '' : /fitted on the \d+ memorized steps: [\d.]+ cells rms/.test(fitText),
        `map legend for a ${info.training.scenario} model: "${fitText}"`);
  const startTrue = await pixels('#true-frame');
  check(startTrue.length === 4 * F && lit(startTrue) === F, 'the true frame at the end of memorization is shown');
  let dialPx = await pixels('#dial');
  const dial0 = s.dial;
  check(dial0 && Number.isFinite(dial0.trueDeg) && Number.isFinite(dial0.learnedDeg) && lit(dialPx) > 1000,
        `the heading dial is drawn: true ${dial0 && dial0.trueDeg.toFixed(1)}°, learned ${dial0 && dial0.learnedDeg.toFixed(1)}°`);
  check(/true \d+°.*learned \d+°/.test(await text('#dial-info')), `dial text: "${await text('#dial-info')}"`);

  // ---- turning --------------------------------------------------------------
  const keys = args.keys.split(',').filter(Boolean);
  let prev = null, prevDial = dial0, changedPred = 0;
  for (let i = 0; i < keys.length; i++) {
    await page.keyboard.press(keys[i]);
    await page.waitForSelector(`#drive-panel[data-steps="${i + 1}"]`);
    s = await summary();
    const step = s.steps[i];
    const want = { ArrowLeft: 'turn_left', ArrowRight: 'turn_right', ArrowUp: 'forward', ArrowDown: 'backward',
                   a: 'strafe_left', d: 'strafe_right', q: 'forward_turn_left', e: 'forward_turn_right' }[keys[i]];
    const psnrText = await text('#psnr');
    check(step.action === want && /^(∞|\d+(\.\d)?) dB$/.test(psnrText),
          `key ${keys[i]}: step ${i + 1} ${step.action}, heading ${(step.heading * 180 / Math.PI).toFixed(1)}°, PSNR "${psnrText}"`);
    const shownPred = await pixels('#pred-frame'), shownTrue = await pixels('#true-frame');
    check(same(shownPred, step.pred) && lit(shownPred) === F && same(shownTrue, step.truth) && lit(shownTrue) === F,
          `key ${keys[i]}: the predicted and the true frame are on screen`);
    const dialNow = await pixels('#dial');
    const dTrue = wrapDeg(s.dial.trueDeg - prevDial.trueDeg);
    const turn = /turn_left$/.test(want) ? 9 : /turn_right$/.test(want) ? -9 : 0;
    if (turn)
      check(Math.abs(dTrue - turn) < 1e-6 && !same(dialNow, dialPx) && s.dial.s3 !== prevDial.s3,
            `key ${keys[i]}: the dial moved (true heading ${dTrue >= 0 ? '+' : ''}${dTrue.toFixed(1)}°, ` +
            `s3 ${prevDial.s3.toFixed(4)} -> ${s.dial.s3.toFixed(4)})`);
    else /* a walk without a turn: the true heading stays */
      check(Math.abs(dTrue) < 1e-6, `key ${keys[i]}: ${want}, the true heading unchanged`);
    if (prev && !same(step.pred, prev.pred)) changedPred++;
    prev = step;
    prevDial = s.dial;
    dialPx = dialNow;
  }
  check(changedPred >= Math.floor((keys.length - 1) / 2),
        `the predicted frame changed on ${changedPred} of ${keys.length - 1} later key presses`);
  // the true frames are the daemon's: ask the step endpoint for the same action list
  s = await summary();
  const acts = s.steps.map((x) => x.action);
  const daemonTrue = await page.evaluate(async ({ model, seed, steps: T, actions }) => {
    const r = await fetch('v1/demo/episodes/step', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model, seed, steps: T, actions, first: actions.length - 1 }) });
    const j = await r.json();
    const b64 = j.observations[0].frame, bin = atob(b64), bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const bmp = await createImageBitmap(new Blob([bytes], { type: 'image/png' }), { colorSpaceConversion: 'none' });
    const c = document.createElement('canvas');
    c.width = bmp.width;
    c.height = bmp.height;
    const g = c.getContext('2d');
    g.drawImage(bmp, 0, 0);
    return { frame: Array.from(g.getImageData(0, 0, c.width, c.height).data), pose: j.observations[0].truth };
  }, { model: args.model, seed: Number(args.seed), steps, actions: acts });
  const lastStep = s.steps[s.steps.length - 1];
  check(same(daemonTrue.frame, lastStep.truth) && daemonTrue.pose.heading === lastStep.heading,
        `the last true frame is POST v1/demo/episodes/step's for the ${acts.length} actions`);
  // turning back to where memorization ended shows the memorized view
  const net = acts.reduce((n, a) => n + (a === 'turn_left' ? 1 : a === 'turn_right' ? -1 : 0), 0);
  if (acts.every((a) => a.startsWith('turn_'))) {
    const back = net > 0 ? 'ArrowRight' : 'ArrowLeft';
    for (let i = 0; i < Math.abs(net) % 40; i++) {
      await page.keyboard.press(back);
      await page.waitForSelector(`#drive-panel[data-steps="${acts.length + i + 1}"]`);
    }
    check(same(await pixels('#true-frame'), startTrue),
          `turned back by ${Math.abs(net)} turns: the true frame is the last memorized one again`);
  }
  s = await summary();
  let n = s.steps.length;
  // keys the scenario does not allow do nothing (rotate: turns only)
  const allowed = info.training.scenario === 'rotate' ? ['turn_left', 'turn_right'] : null;
  if (allowed) {
    await page.keyboard.press('ArrowUp');
    await page.waitForTimeout(400);
    s = await summary();
    check(s.steps.length === n && await page.locator('.pad3d button[data-action="forward"]').isDisabled(),
          'rotate: ↑ (forward) does nothing and its button is disabled');
  }
  // an on-screen button turns too
  await page.click('.pad3d button[data-action="turn_right"]');
  await page.waitForSelector(`#drive-panel[data-steps="${n + 1}"]`);
  s = await summary();
  n = s.steps.length;
  check(s.steps[n - 1].action === 'turn_right', 'the ⟳ button turns right');
  check(s.steps.every((x) => x.psnr === null || (x.psnr > 0 && x.psnr < 100)),
        `PSNR per step: ${s.steps.map((x) => (x.psnr === null ? '∞' : x.psnr.toFixed(1))).join(' ')}`);
  check(lit(await pixels('#psnr-plot')) > 500, 'the PSNR plot is drawn');
  check(lit(await pixels('#drive-strip')) >= F * 2 * Math.min(16, n), 'the strip of predicted and true frames is drawn');
  check(/Step \d+: turn_right/.test(await text('#drive-info')), `drive info: "${await text('#drive-info')}"`);
  const after = await page.evaluate(async (id) => (await fetch(`v1/sessions/${id}`)).json(), s.session);
  check(after.steps === steps && after.memory_entries === steps, 'turning did not change the session');
  if (args.screenshot) {
    fs.mkdirSync(path.dirname(path.resolve(args.screenshot)), { recursive: true });
    await page.screenshot({ path: args.screenshot, fullPage: true });
    console.log(`screenshot: ${args.screenshot}`);
  }

  // ---- errors are shown, and the 2-D mode comes back -------------------------
  if (args['error-check']) {
    await page.evaluate(async (id) => fetch(`v1/sessions/${id}`, { method: 'DELETE' }), s.session);
    await page.keyboard.press('ArrowLeft');
    await page.waitForSelector('#error:not([hidden])');
    const err = await text('#error');
    check(/404/.test(err) && /session-not-found/.test(err), `a server problem is shown: "${err.replace(/\s+/g, ' ')}"`);
    consoleErrors.length = 0; // the page logs the error it shows, and the browser the failed request
    await page.click('#error-close');
    await page.fill('#maze-seed', '-1');
    await page.click('#run');
    await page.waitForSelector('#error:not([hidden])');
    check(/maze seed/.test(await text('#error')), `a bad seed is refused with a message: "${(await text('#error')).replace(/\s+/g, ' ')}"`);
    await page.click('#error-close');
    consoleErrors.length = 0;
  }
  if (args.model2d) {
    await page.selectOption('#model', args.model2d);
    s = await summary();
    // the page deletes its session as it drops the run; the error check deleted it already (a 404)
    if (args['error-check']) {
      await page.waitForTimeout(300);
      consoleErrors.splice(0, consoleErrors.length, ...consoleErrors.filter((m) => !/status of 404/.test(m)));
    }
    check(s.env === 'imagenav' && s.memorized === 0 && await page.locator('#world-procedural').isVisible() &&
          !(await page.locator('#heading-panel').isVisible()) && Number(await page.inputValue('#steps')) === 256,
          `picking ${args.model2d} goes back to the 2-D mode (world controls, no dial, 256 steps), the maze run dropped`);
  }
} catch (e) {
  check(false, `the browser run stopped: ${e.stack || e}`);
  if (args.screenshot) {
    const failed = args.screenshot.replace(/\.png$/, '') + '-failed.png';
    await page.screenshot({ path: failed, fullPage: true }).then(() => console.error(`screenshot of the failure: ${failed}`), () => {});
  }
}
await finish('viewer_maze3d.mjs');
