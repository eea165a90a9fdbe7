/* The GTMSM viewer: plain JavaScript against gtmsmd's HTTP API, no build step.
 * Two modes, by the selected model's environment: the 2-D world (imagenav,
 * described below) and the first-person maze (maze3d, at the end).
 *
 * 1. Setup: GET v1/models and GET v1/demo/worlds fill the pickers.
 * 2. Memorization: POST v1/demo/episodes gives an episode of the built-in 2-D
 *    simulator (the world as a PNG, every step as an observation with its true
 *    grid position). The page opens a fresh session (PUT v1/sessions/{id})
 *    and sends the observations as NDJSON in batches. Before each batch it
 *    asks the session for the predicted states of the batch's actions: those
 *    are exactly the states the memory stores the batch's frames under (the
 *    session rolls the same transition when it observes), so the page draws
 *    the learned state trajectory as the memory fills.
 * 3. Driving: each key press appends an action to a list kept here and asks
 *    for the predictions of the whole list (POST .../predictions), which
 *    start from the state at the end of memorization and never change the
 *    session. The last predicted frame is shown beside the true one, which
 *    the page crops from the world at the true position it tracks with the
 *    simulator's rules (9x9 grid, view corner at 3*col, 3*row, a move off the
 *    grid does not move), with the PSNR of the pair.
 *
 * First person (maze3d models): the demo episode is the model's scenario in
 * the 3-D maze (frames, true poses, the top-down map); memorization is the
 * same. Each key press sends the action list since memorization both to the
 * session's predictions and to POST v1/demo/episodes/step, which replays the
 * episode in the simulator and returns the true frame after the list (the
 * page cannot render the maze itself). The dial shows the true heading and
 * the learned heading: the state's s3, mapped to radians by a least-squares
 * fit h = a s3 + b over the memorized steps (as gtmsm eval does), since the
 * model is never told where 0 is, which way is positive, or the scale.
 *
 * All paths are relative, so the page also works behind a proxy prefix. */
'use strict';

(() => {
  const GRID = 9, STRIDE = 3, VIEW = 8;
  const MOVES = { right: [1, 0], left: [-1, 0], up: [0, -1], down: [0, 1], stay: [0, 0] };
  const KEYS = { ArrowRight: 'right', ArrowLeft: 'left', ArrowUp: 'up', ArrowDown: 'down', ' ': 'stay',
                 s: 'stay', S: 'stay' };
  // maze3d: the keys of the first-person mode (which are enabled depends on the scenario)
  const KEYS3D = { ArrowLeft: 'turn_left', ArrowRight: 'turn_right', ArrowUp: 'forward', ArrowDown: 'backward',
                   a: 'strafe_left', A: 'strafe_left', d: 'strafe_right', D: 'strafe_right',
                   q: 'forward_turn_left', Q: 'forward_turn_left', e: 'forward_turn_right', E: 'forward_turn_right' };
  const MAZE_ACTIONS = ['forward', 'backward', 'strafe_left', 'strafe_right', 'turn_left', 'turn_right',
                        'forward_turn_left', 'forward_turn_right'];
  // the rotating agent was trained on turns only: other actions would drive a model out of its data
  const SCENARIO_ACTIONS = { rotate: ['turn_left', 'turn_right'] };
  // "seen during memorization" as gtmsm eval decides it (tools/gtmsm/eval.c)
  const SEEN3D = { rotate: { cells: 0.25, deg: 4.5 }, other: { cells: 0.5, deg: 15 } };
  const HEADING_BINS = 40; // the simulator's turn is 1/40 of a circle
  const MAP_SCALE = 2; // canvas pixels per map pixel
  const STRIP = 16; // driven steps in the strip
  const SHEET = 256; // memorized frames in the contact sheet (the latest)

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $('status'), error: $('error'), errorTitle: $('error-title'), errorDetail: $('error-detail'),
    model: $('model'), modelInfo: $('model-info'), seed: $('seed'), photo: $('photo'),
    mazeSeed: $('maze-seed'), mazeInfo: $('maze-info'), dial: $('dial'), dialInfo: $('dial-info'),
    worldProcedural: $('world-procedural'), worldPhoto: $('world-photo'), steps: $('steps'), obstacles: $('obstacles'),
    speed: $('speed'), run: $('run'), apikey: $('apikey'), auth: $('auth'),
    world: $('world'), memFrame: $('mem-frame'), memCaption: $('mem-caption'),
    memProgress: $('mem-progress'), memBar: $('mem-bar'), memSheet: $('mem-sheet'), states: $('states'),
    drivePanel: $('drive-panel'), predFrame: $('pred-frame'), trueFrame: $('true-frame'), psnr: $('psnr'),
    driveInfo: $('drive-info'), driveReset: $('drive-reset'), psnrPlot: $('psnr-plot'),
    driveStrip: $('drive-strip'), pad: document.querySelectorAll('.pad2d button'),
    pad3d: document.querySelectorAll('.pad3d button'),
  };

  // Everything the page knows; replaced as a whole by each memorization run.
  let models = [];
  let run = null; // {gen, env, model, episode, W, H, world (ImageData 32x32; imagenav) or map (ImageData;
  //                 maze3d), frames [ImageData], truth, sessionId, memorized, memStates [[...]],
  //                 seenCells Set (imagenav), headingBins Set (maze3d), drive {...}}
  let generation = 0; // bumps on every run: stale async work checks it and stops
  let driveQueue = Promise.resolve();

  // ---- HTTP ----------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, title, detail, problem) {
      super(`${status} ${title}${detail ? ': ' + detail : ''}`);
      this.status = status;
      this.title = title;
      this.detail = detail;
      this.problem = problem || null;
    }
  }

  /* One request to the daemon. json: a body to send as JSON; body + type: a
   * raw body. Returns the parsed JSON reply; throws ApiError with the
   * problem+json details on any failure. 503s are retried after Retry-After
   * (observations are idempotent by t, the rest is read-only or idempotent). */
  async function api(method, path, { json, body, type } = {}) {
    const headers = {};
    const key = ui.apikey.value.trim();
    if (key) headers.Authorization = 'Bearer ' + key;
    if (json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(json);
    } else if (type) {
      headers['Content-Type'] = type;
    }
    for (let attempt = 0; ; attempt++) {
      let res;
      try {
        res = await fetch(path, { method, headers, body, cache: 'no-store' });
      } catch (e) {
        throw new ApiError(0, 'Network error', `cannot reach gtmsmd (${e.message}); is it running?`);
      }
      const ctype = res.headers.get('Content-Type') || '';
      let data = null;
      if (ctype.includes('json')) {
        try { data = await res.json(); } catch (e) { data = null; }
      }
      if (res.ok) return data;
      if (res.status === 503 && attempt < 3) {
        const wait = Math.min(5, Number(res.headers.get('Retry-After')) || 1);
        await sleep(wait * 1000);
        continue;
      }
      if (data && data.type) {
        const slug = String(data.type).replace('urn:gtmsm:problem:', '');
        throw new ApiError(res.status, `${data.title || res.statusText} (${slug})`, data.detail || '', data);
      }
      throw new ApiError(res.status, res.statusText || 'HTTP error', `${method} ${path}`);
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function showError(context, e) {
    const what = e instanceof ApiError ? e.title : (e && e.message) || String(e);
    let detail = e instanceof ApiError ? e.detail : '';
    if (e instanceof ApiError && e.status === 401) {
      detail += ' Enter an API key below.';
      ui.auth.open = true;
    }
    ui.errorTitle.textContent = `${context}: ${e instanceof ApiError && e.status ? e.status + ' ' : ''}${what}`;
    ui.errorDetail.textContent = detail;
    ui.error.hidden = false;
    setStatus(`${context} failed.`);
    console.error(context, e);
  }

  function clearError() { ui.error.hidden = true; }

  function setStatus(text) { ui.status.textContent = text; }

  function setPhase(phase) { document.body.dataset.phase = phase; }

  // ---- images --------------------------------------------------------------

  /* A base64 PNG to ImageData (RGBA), decoded without colour conversion so
   * the pixel values are the PNG's own. */
  async function decodePng(b64) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/png' }),
      { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    const c = document.createElement('canvas');
    c.width = bitmap.width;
    c.height = bitmap.height;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(bitmap, 0, 0);
    bitmap.close();
    return g.getImageData(0, 0, c.width, c.height);
  }

  /* The 8x8 view at grid cell (col, row) of the world (ImageData 32x32). */
  function crop(world, col, row) {
    const out = new ImageData(VIEW, VIEW);
    const x0 = col * STRIDE, y0 = row * STRIDE;
    for (let y = 0; y < VIEW; y++)
      for (let x = 0; x < VIEW; x++) {
        const s = ((y0 + y) * world.width + (x0 + x)) * 4, d = (y * VIEW + x) * 4;
        out.data[d] = world.data[s];
        out.data[d + 1] = world.data[s + 1];
        out.data[d + 2] = world.data[s + 2];
        out.data[d + 3] = 255;
      }
    return out;
  }

  /* PSNR in dB over the RGB values (as the evaluator's image_psnr_u8);
   * Infinity for identical frames. */
  function psnr(a, b) {
    let sse = 0, n = 0;
    for (let i = 0; i < a.data.length; i += 4)
      for (let k = 0; k < 3; k++) {
        const d = a.data[i + k] - b.data[i + k];
        sse += d * d;
        n++;
      }
    return sse === 0 ? Infinity : 10 * Math.log10((255 * 255) / (sse / n));
  }

  const fmtPsnr = (p) => (p === Infinity ? '∞ dB' : `${p.toFixed(1)} dB`);

  function sameFrame(a, b) {
    for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) return false;
    return true;
  }

  function drawFrame(canvas, img) {
    const g = canvas.getContext('2d');
    if (!img) {
      g.clearRect(0, 0, canvas.width, canvas.height);
      return;
    }
    g.putImageData(img, 0, 0);
  }

  // ---- setup ---------------------------------------------------------------

  async function loadSetup() {
    setPhase('loading');
    setStatus('Loading models…');
    try {
      const [m, w] = await Promise.all([api('GET', 'v1/models'), api('GET', 'v1/demo/worlds')]);
      models = m.models || [];
      ui.model.replaceChildren(...models.map((x) => {
        const o = document.createElement('option');
        o.value = x.name;
        o.textContent = `${x.name} (${x.frame_width}×${x.frame_height}×${x.frame_channels}` +
          `${x.environment ? ', ' + x.environment : ''})`;
        return o;
      }));
      ui.photo.replaceChildren(...(w.photos || []).map((p) => {
        const o = document.createElement('option');
        o.value = String(p.index);
        o.textContent = p.name;
        return o;
      }));
      ui.worldPhoto.disabled = !(w.photos && w.photos.length);
      ui.photo.disabled = ui.worldPhoto.disabled;
      if (ui.worldPhoto.disabled) ui.worldProcedural.checked = true;
      showModelInfo();
      clearError();
      if (!models.length) {
        setStatus('The daemon serves no models: put a *.gtm file in its models folder and restart it.');
        setPhase('idle');
        return;
      }
      ui.run.disabled = false;
      setStatus('Ready: choose a model and a world, then Memorize.');
      setPhase('idle');
    } catch (e) {
      setPhase('error');
      showError('Loading the models', e);
    }
  }

  const envOf = (m) => (m && m.environment === 'maze3d' ? 'maze3d' : 'imagenav');
  const scenarioOf = (m) => (m && m.training && m.training.scenario) || 'rotate';
  const allowedActions = (m) => SCENARIO_ACTIONS[scenarioOf(m)] || MAZE_ACTIONS;
  function defaultSteps(m) {
    if (envOf(m) !== 'maze3d') return 256;
    const n = m.training && m.training.episode;
    return Number.isInteger(n) && n >= 2 && n <= 4096 ? n : 80;
  }

  function showModelInfo() {
    const m = models.find((x) => x.name === ui.model.value);
    ui.modelInfo.textContent = m
      ? `version ${m.version} · state ${m.state_size} · latent ${m.latent_size} · k ${m.memory_k} · ` +
        `actions ${m.actions.join(', ')}`
      : '';
    setEnv(envOf(m), m);
  }

  /* Switches the page between the 2-D mode and the first-person mode. A run
   * of the other mode is dropped (its session deleted): its panels are gone. */
  function setEnv(env, m) {
    if (env === 'maze3d' && m) {
      const sc = scenarioOf(m), acts = allowedActions(m);
      ui.mazeInfo.textContent = `scenario ${sc}${sc === 'rotate' ? ' (the agent stands and turns)' : ''}, ` +
        `procedural textures; keys: ${acts.length < MAZE_ACTIONS.length ? 'turns only (← →)' : 'all 8 actions'}`;
    }
    if (document.body.dataset.env === env) return;
    if (run) {
      deleteSession(run.sessionId, false);
      run = null;
      generation++;
      resetDriveView();
      for (const c of [ui.world, ui.states, ui.memFrame, ui.memSheet])
        c.getContext('2d').clearRect(0, 0, c.width, c.height);
      ui.memCaption.textContent = 'frame —';
      ui.memProgress.textContent = 'Choose a model and a world, then Memorize.';
      ui.memBar.value = 0;
    }
    document.body.dataset.env = env;
    ui.steps.value = String(m ? defaultSteps(m) : 256);
    drawDial();
  }

  // ---- memorization --------------------------------------------------------

  function randomId() {
    const b = new Uint8Array(8);
    crypto.getRandomValues(b);
    return 'viewer-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  function deleteSession(id, keepalive) {
    if (!id) return;
    const headers = {};
    const key = ui.apikey.value.trim();
    if (key) headers.Authorization = 'Bearer ' + key;
    // best effort: the session is the viewer's own scratch space
    fetch(`v1/sessions/${id}`, { method: 'DELETE', headers, keepalive }).catch(() => {});
  }

  function readSteps() {
    const n = Number(ui.steps.value);
    if (!Number.isInteger(n) || n < 2 || n > 4096) throw new Error('memorize 2..4096 steps');
    return n;
  }

  async function memorize() {
    clearError();
    const gen = ++generation;
    const model = models.find((x) => x.name === ui.model.value);
    if (!model) return;
    const env = envOf(model);
    let request;
    try {
      request = { model: model.name, steps: readSteps() };
      if (env === 'maze3d') {
        const seed = Number(ui.mazeSeed.value);
        if (!Number.isSafeInteger(seed) || seed < 0) throw new Error('the maze seed is an integer >= 0');
        request.seed = seed;
      } else if (ui.worldPhoto.checked) {
        request.world = 'photo';
        request.photo = Number(ui.photo.value);
      } else {
        const seed = Number(ui.seed.value);
        if (!Number.isSafeInteger(seed) || seed < 0) throw new Error('the seed is an integer >= 0');
        request.world = 'procedural';
        request.seed = seed;
      }
      if (env !== 'maze3d') {
        const n = Number(ui.obstacles.value);
        if (!Number.isSafeInteger(n) || n < 0 || n > 80) throw new Error('obstacles are an integer in 0..80');
        request.obstacles = n;
      }
    } catch (e) {
      showError('Memorize', e);
      return;
    }
    const previous = run;
    if (previous) deleteSession(previous.sessionId, false);
    run = null;
    setControls(false);
    resetDriveView();
    setPhase('memorizing');
    try {
      setStatus('Generating the demo episode…');
      const episode = await api('POST', 'v1/demo/episodes', { json: request });
      if (gen !== generation) return;
      const maze = episode.environment === 'maze3d';
      const world = maze ? null : await decodePng(episode.world.png);
      const map = maze ? await decodePng(episode.map.png) : null;
      const frames = await Promise.all(episode.observations.map((o) => decodePng(o.frame)));
      if (gen !== generation) return;
      run = {
        gen, env: maze ? 'maze3d' : 'imagenav', model, episode, world, map, frames,
        W: frames[0].width, H: frames[0].height, truth: episode.observations.map((o) => o.truth),
        sessionId: randomId(), memorized: 0, memStates: [], seenCells: new Set(), headingBins: new Set(),
        cropMismatches: maze ? null : 0, drive: null, dialState: null,
        blocked: new Set((maze ? [] : episode.grid.obstacles || []).map((c) => c.row * GRID + c.col)),
      };
      // The true frames while driving are crops of the world: check that the
      // crops reproduce the simulator's own frames at the memorized positions.
      if (!maze)
        run.truth.forEach((p, t) => { if (!sameFrame(crop(world, p.col, p.row), frames[t])) run.cropMismatches++; });
      const name = maze ? `maze seed ${episode.seed} (${episode.scenario})`
        : episode.world.kind === 'photo' ? `photo ${episode.world.name}` : `procedural seed ${episode.world.seed}`;
      sizeCanvases(run);
      drawWorld();
      drawStates();
      drawDial();
      setStatus(`Memorizing ${episode.steps} steps of ${name} in session ${run.sessionId}…`);
      await api('PUT', `v1/sessions/${run.sessionId}`, { json: { model: model.name } });
      const batch = ui.speed.value === 'fast' ? 64 : 8;
      const T = episode.observations.length;
      for (let t0 = 0; t0 < T; t0 += batch) {
        const obs = episode.observations.slice(t0, t0 + batch);
        const nd = obs.map((o) => JSON.stringify({ t: o.t, action: o.action, frame: o.frame })).join('\n') + '\n';
        const ack = await api('POST', `v1/sessions/${run.sessionId}/observations?states=true`,
          { body: nd, type: 'application/x-ndjson' });
        if (gen !== generation) return;
        if (ack.steps !== t0 + obs.length)
          throw new Error(`the session has ${ack.steps} steps after observations ${t0}..${t0 + obs.length - 1}`);
        // the states the memory stored these frames under (from the actions,
        // or corrected by what the frames show: landmark inference)
        const states = ack.states || [];
        if (states.length !== obs.length)
          throw new Error(`the session returned ${states.length} states for ${obs.length} observations`);
        for (let i = 0; i < obs.length; i++) {
          run.memStates.push(states[i]);
          const p = run.truth[t0 + i];
          if (maze) run.headingBins.add(headingBin(p.heading - run.truth[0].heading));
          else run.seenCells.add(p.row * GRID + p.col);
          run.memorized = t0 + i + 1;
          if (batch <= 8) { // watching: one frame at a time
            showMemorized(run.memorized - 1);
            await sleep(25);
            if (gen !== generation) return;
          }
        }
        showMemorized(run.memorized - 1);
      }
      startDriving();
      const mism = run.cropMismatches ? ` (warning: ${run.cropMismatches} crops differ from the episode's frames)` : '';
      const how = !maze ? 'Drive with the arrow keys or the buttons'
        : allowedActions(model).length < MAZE_ACTIONS.length ? 'Turn with ← and → (or the buttons)'
          : 'Turn with ← →, walk with ↑ ↓, strafe with A D, walk and turn with Q E';
      setStatus(`Memorized ${T} frames of ${name}. ${how}${mism}.`);
    } catch (e) {
      if (gen !== generation) return;
      setPhase('error');
      showError('Memorization', e);
    } finally {
      if (gen === generation) setControls(true);
    }
  }

  /* Canvas sizes for a run's frames (8x8 imagenav, the model's size in maze3d) and map. */
  function sizeCanvases(r) {
    const cell = r.W + 1;
    for (const c of [ui.memFrame, ui.predFrame, ui.trueFrame]) {
      c.width = r.W;
      c.height = r.H;
    }
    ui.memSheet.width = 16 * cell - 1;
    ui.memSheet.height = Math.ceil(Math.min(r.frames.length, SHEET) / 16) * (r.H + 1) - 1; // also clears
    ui.driveStrip.width = STRIP * cell - 1;
    ui.driveStrip.height = 2 * (r.H + 1) - 1;
    // 2-D: the CSS scales the 8x8 strip 4x; 3-D frames are shown at their own size
    ui.driveStrip.style.width = r.env === 'maze3d' ? `${ui.driveStrip.width}px` : '';
    ui.driveStrip.style.height = r.env === 'maze3d' ? `${ui.driveStrip.height}px` : '';
    if (r.env === 'maze3d') {
      ui.world.width = r.map.width * MAP_SCALE;
      ui.world.height = r.map.height * MAP_SCALE;
      const k = Math.min(1.5, 330 / r.map.width); // CSS pixels per map pixel
      ui.world.style.width = `${Math.round(r.map.width * k)}px`;
      ui.world.style.height = `${Math.round(r.map.height * k)}px`;
    } else {
      ui.world.width = ui.world.height = 256;
      ui.world.style.width = ui.world.style.height = '';
    }
  }

  function setControls(enabled) {
    for (const el of [ui.run, ui.model, ui.seed, ui.photo, ui.obstacles, ui.steps, ui.speed, ui.worldProcedural, ui.worldPhoto,
      ui.mazeSeed])
      el.disabled = !enabled || (el === ui.worldPhoto || el === ui.photo ? !ui.photo.options.length : false);
    ui.run.textContent = enabled ? (run ? 'Memorize again' : 'Memorize') : 'Memorizing…';
  }

  function showMemorized(t) {
    drawFrame(ui.memFrame, run.frames[t]);
    const p = run.truth[t];
    const where = run.env === 'maze3d' ? `(${p.x.toFixed(2)}, ${p.y.toFixed(2)}) · ${fmtDeg(p.heading)}`
      : `(${p.col}, ${p.row})`;
    ui.memCaption.textContent = `t ${t} · ${run.episode.observations[t].action} · ${where}`;
    ui.memProgress.textContent = `${run.memorized} of ${run.frames.length} frames memorized ` +
      (run.env === 'maze3d' ? `(headings seen: ${run.headingBins.size} of ${HEADING_BINS} turns)`
        : `(${run.seenCells.size} of ${GRID * GRID} positions seen)`);
    ui.memBar.max = run.frames.length;
    ui.memBar.value = run.memorized;
    drawSheet();
    drawWorld();
    drawStates();
    drawDial();
  }

  /* The contact sheet: the latest SHEET memorized frames, 16 a row. */
  function drawSheet() {
    const cols = 16, cw = run.W + 1, ch = run.H + 1;
    const first = Math.max(0, run.memorized - SHEET);
    const g = ui.memSheet.getContext('2d');
    g.clearRect(0, 0, ui.memSheet.width, ui.memSheet.height);
    for (let k = first; k < run.memorized; k++)
      g.putImageData(run.frames[k], ((k - first) % cols) * cw, Math.floor((k - first) / cols) * ch);
  }

  // ---- the world map and the state plot ------------------------------------

  function cellCentre(p, scale) {
    return [(p.col * STRIDE + VIEW / 2) * scale, (p.row * STRIDE + VIEW / 2) * scale];
  }

  function drawPath(g, points, colour, scale) {
    if (points.length < 1) return;
    g.strokeStyle = colour;
    g.lineWidth = 2;
    g.lineJoin = 'round';
    g.beginPath();
    points.forEach((p, i) => {
      const [x, y] = cellCentre(p, scale);
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
  }

  function drawWorld() {
    const c = ui.world, g = c.getContext('2d');
    const scale = c.width / 32;
    g.clearRect(0, 0, c.width, c.height);
    if (!run) return;
    if (run.env === 'maze3d') {
      drawMap();
      return;
    }
    const tmp = document.createElement('canvas');
    tmp.width = run.world.width;
    tmp.height = run.world.height;
    tmp.getContext('2d').putImageData(run.world, 0, 0);
    g.imageSmoothingEnabled = false;
    g.drawImage(tmp, 0, 0, c.width, c.height);
    // obstacle cells: a cell's own square (the stride) about its view's centre, crossed out
    for (const k of run.blocked) {
      const [x, y] = cellCentre({ col: k % GRID, row: Math.floor(k / GRID) }, scale), h = (STRIDE * scale) / 2;
      g.fillStyle = 'rgba(60, 60, 60, 0.9)';
      g.fillRect(x - h, y - h, 2 * h, 2 * h);
      g.strokeStyle = '#fff';
      g.lineWidth = 1.5;
      g.beginPath();
      g.moveTo(x - h, y - h); g.lineTo(x + h, y + h); g.moveTo(x + h, y - h); g.lineTo(x - h, y + h);
      g.stroke();
    }
    const mem = run.truth.slice(0, Math.max(1, run.memorized));
    drawPath(g, mem, 'rgba(255, 204, 0, 0.9)', scale);
    // the learned path: the stored states through the affine map fitted on the memorized steps
    // (as gtmsm eval fits them: the learned displacements need not be orthogonal or equally long)
    const moved = new Set(mem.map((p) => p.row * GRID + p.col)).size > 2;
    const fit = run.memorized >= 3 && moved ? affineFit(run.memorized) : null;
    if (fit) {
      const pts = run.memStates.slice(0, run.memorized).map((s) => { const q = fit.apply(s[0], s[1]); return { col: q.x, row: q.y }; });
      drawPath(g, pts, 'rgba(255, 150, 0, 0.85)', scale);
    }
    run.worldFitRms = fit ? fit.rms : null;
    const fitInfo = $('world-fit');
    if (fitInfo) fitInfo.textContent = fit ? `(fitted on the ${run.memorized} memorized steps: ${fit.rms.toFixed(2)} cells rms)` : '';
    let here = mem[mem.length - 1];
    if (run.drive && run.drive.steps.length) {
      const drv = [run.drive.start, ...run.drive.steps.map((s) => s.pos)];
      drawPath(g, drv, 'rgba(0, 200, 235, 0.95)', scale);
      here = drv[drv.length - 1];
    }
    g.strokeStyle = '#e8322b';
    g.lineWidth = 2;
    g.strokeRect(here.col * STRIDE * scale + 1, here.row * STRIDE * scale + 1, VIEW * scale - 2, VIEW * scale - 2);
  }

  /* maze3d: the daemon's top-down map (with the memorized path drawn in it),
   * the driven path and the agent's pose now. Map point (x, y) is at map
   * pixel (x cell_px, (grid_height - y) cell_px): y grows up. */
  function drawMap() {
    const c = ui.world, g = c.getContext('2d'), m = run.episode.map, k = c.width / m.width;
    const tmp = document.createElement('canvas');
    tmp.width = run.map.width;
    tmp.height = run.map.height;
    tmp.getContext('2d').putImageData(run.map, 0, 0);
    g.imageSmoothingEnabled = false;
    g.drawImage(tmp, 0, 0, c.width, c.height);
    const px = (p) => [p.x * m.cell_px * k, (m.grid_height - p.y) * m.cell_px * k];
    let here = run.truth[Math.max(0, run.memorized - 1)];
    if (run.drive && run.drive.steps.length) {
      const drv = [run.drive.start, ...run.drive.steps.map((s) => s.pose)];
      g.strokeStyle = 'rgba(0, 200, 235, 0.95)';
      g.lineWidth = 2;
      g.beginPath();
      drv.forEach((p, i) => { const [x, y] = px(p); if (i === 0) g.moveTo(x, y); else g.lineTo(x, y); });
      g.stroke();
      here = drv[drv.length - 1];
    }
    // the learned trajectory: (s1, s2) through the similarity fitted on the memorized steps
    // (an agent that stands and turns has no path: nothing to fit)
    const mem = run.truth.slice(0, run.memorized);
    const spread = mem.length ? Math.max(...mem.map((p) => Math.hypot(p.x - mem[0].x, p.y - mem[0].y))) : 0;
    const fit = run.memorized >= 2 && run.memStates[0].length >= 2 && spread > 0.25 ? similarityFit(run.memorized) : null;
    if (fit) {
      const learned = (s) => px(fit.apply(s[0], s[1]));
      const path = (states, colour, width) => {
        g.strokeStyle = colour;
        g.lineWidth = width;
        g.beginPath();
        states.forEach((s, i) => { const [x, y] = learned(s); if (i === 0) g.moveTo(x, y); else g.lineTo(x, y); });
        g.stroke();
      };
      path(run.memStates.slice(0, run.memorized), 'rgba(255, 150, 0, 0.85)', 1.5);
      if (run.drive && run.drive.steps.length)
        path([run.memStates[run.memorized - 1], ...run.drive.steps.map((s) => s.state)], 'rgba(230, 0, 140, 0.95)', 2);
    }
    const fitInfo = $('map-fit');
    if (fitInfo)
      fitInfo.textContent = fit ? `(fitted on the ${run.memorized} memorized steps: ${fit.rms.toFixed(2)} cells rms` +
        `${fit.mirror ? ', mirrored' : ''})` : '';
    const [x, y] = px(here), r = 0.2 * m.cell_px * k, len = 0.6 * m.cell_px * k;
    g.strokeStyle = '#e8322b';
    g.lineWidth = 2;
    g.beginPath();
    g.arc(x, y, r, 0, 2 * Math.PI);
    g.moveTo(x, y);
    g.lineTo(x + Math.cos(here.heading) * len, y - Math.sin(here.heading) * len);
    g.stroke();
  }

  /* The least-squares affine map from the learned (s1, s2) of the first n
   * memorized steps to the true grid (col, row), as gtmsm eval fits it
   * (eval_affine_fit in core/model/eval.c, the same tiny ridge): the normal
   * equations of [s1 s2 1] solved by Cramer's rule. */
  function affineFit(n) {
    const A = [[0, 0, 0], [0, 0, 0], [0, 0, 0]], b = [[0, 0, 0], [0, 0, 0]];
    for (let i = 0; i < n; i++) {
      const x = [run.memStates[i][0], run.memStates[i][1], 1], z = [run.truth[i].col, run.truth[i].row];
      for (let r = 0; r < 3; r++) {
        for (let c = 0; c < 3; c++) A[r][c] += x[r] * x[c];
        b[0][r] += x[r] * z[0];
        b[1][r] += x[r] * z[1];
      }
    }
    for (let r = 0; r < 3; r++) A[r][r] += 1e-9 * (1 + A[r][r]);
    const det = (m) => m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
      + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    const d = det(A);
    if (!Number.isFinite(d) || Math.abs(d) < 1e-12) return null;
    const coef = b.map((rhs) => [0, 1, 2].map((k) => det(A.map((row, r) => row.map((v, c) => (c === k ? rhs[r] : v)))) / d));
    const apply = (s1, s2) => ({ x: coef[0][0] * s1 + coef[0][1] * s2 + coef[0][2], y: coef[1][0] * s1 + coef[1][1] * s2 + coef[1][2] });
    let res = 0;
    for (let i = 0; i < n; i++) {
      const q = apply(run.memStates[i][0], run.memStates[i][1]);
      res += (q.x - run.truth[i].col) ** 2 + (q.y - run.truth[i].row) ** 2;
    }
    return { apply, rms: Math.sqrt(res / n) };
  }

  /* The least-squares similarity (rotation, scale, translation, a mirror
   * image allowed) from the learned (s1, s2) of the first n memorized steps to
   * the true (x, y), as gtmsm eval fits it (core/model/eval_maze3d.c): as
   * complex numbers z = a w + b or z = a conj(w) + b, whichever fits better. */
  function similarityFit(n) {
    let best = null;
    for (const mirror of [false, true]) {
      const w = run.memStates.slice(0, n).map((s) => [s[0], mirror ? -s[1] : s[1]]);
      const z = run.truth.slice(0, n).map((p) => [p.x, p.y]);
      const mean = (v) => v.reduce((a, p) => [a[0] + p[0] / n, a[1] + p[1] / n], [0, 0]);
      const mw = mean(w), mz = mean(z);
      let nr = 0, ni = 0, den = 1e-12;
      for (let i = 0; i < n; i++) {
        const wr = w[i][0] - mw[0], wi = w[i][1] - mw[1], zr = z[i][0] - mz[0], zi = z[i][1] - mz[1];
        nr += wr * zr + wi * zi;
        ni += wr * zi - wi * zr;
        den += wr * wr + wi * wi;
      }
      const ar = nr / den, ai = ni / den;
      const br = mz[0] - (ar * mw[0] - ai * mw[1]), bi = mz[1] - (ar * mw[1] + ai * mw[0]);
      let res = 0;
      for (let i = 0; i < n; i++) {
        const x = ar * w[i][0] - ai * w[i][1] + br - z[i][0], y = ar * w[i][1] + ai * w[i][0] + bi - z[i][1];
        res += x * x + y * y;
      }
      if (!best || res < best.res) best = { ar, ai, br, bi, mirror, res };
    }
    const f = best;
    return {
      ...f,
      rms: Math.sqrt(f.res / n),
      apply: (s1, s2) => {
        const wi = f.mirror ? -s2 : s2;
        return { x: f.ar * s1 - f.ai * wi + f.br, y: f.ar * wi + f.ai * s1 + f.bi };
      },
    };
  }

  function drawStates() {
    const c = ui.states, g = c.getContext('2d');
    g.clearRect(0, 0, c.width, c.height);
    if (!run || !run.memStates.length) return;
    const drv = run.drive ? run.drive.steps.map((s) => s.state) : [];
    const all = run.memStates.concat(drv);
    const S = all[0].length;
    // 2-D states are drawn as a path in the plane, 1-D ones against time
    const xy = S >= 2 ? (s) => [s[0], s[1]] : (s, i) => [i, s[0]];
    const pts = all.map(xy);
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const [x, y] of pts) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
    const span = Math.max(x1 - x0, y1 - y0, 1e-6), pad = 16;
    const k = (c.width - 2 * pad) / span;
    const ox = pad + ((c.width - 2 * pad) - (x1 - x0) * k) / 2, oy = pad + ((c.height - 2 * pad) - (y1 - y0) * k) / 2;
    const map = ([x, y]) => [ox + (x - x0) * k, oy + (y - y0) * k];
    const line = (ps, colour, width) => {
      g.strokeStyle = colour;
      g.lineWidth = width;
      g.beginPath();
      ps.forEach((p, i) => { const [x, y] = map(p); if (i === 0) g.moveTo(x, y); else g.lineTo(x, y); });
      g.stroke();
    };
    const n = run.memStates.length;
    line(pts.slice(0, n), 'rgba(224, 168, 0, 0.55)', 1);
    g.fillStyle = 'rgba(224, 168, 0, 0.9)';
    for (const p of pts.slice(0, n)) { const [x, y] = map(p); g.fillRect(x - 1.5, y - 1.5, 3, 3); }
    if (drv.length) line([pts[n - 1], ...pts.slice(n)], 'rgba(0, 163, 196, 0.95)', 2);
    const [cx, cy] = map(pts[pts.length - 1]);
    g.strokeStyle = '#e8322b';
    g.lineWidth = 2;
    g.beginPath();
    g.arc(cx, cy, 5, 0, 2 * Math.PI);
    g.stroke();
    g.fillStyle = '#5d6676';
    g.font = '11px system-ui, sans-serif';
    g.fillText(S >= 2 ? `state[0] → , state[1] ↓ (S = ${S}${S >= 3 ? '; s3 on the dial' : ''})` : 'state over time',
      6, c.height - 6);
  }

  // ---- the heading dial (maze3d) ------------------------------------------

  const TAU = 2 * Math.PI;
  const wrap2pi = (h) => ((h % TAU) + TAU) % TAU;
  const wrapPi = (h) => wrap2pi(h + Math.PI) - Math.PI;
  const fmtDeg = (h) => `${Math.round((wrap2pi(h) * 180) / Math.PI) % 360}°`;
  const headingBin = (h) => Math.round(wrap2pi(h) / (TAU / HEADING_BINS)) % HEADING_BINS;

  /* h = a s3 + b by least squares over the first n memorized steps, the true
   * heading unwrapped by its signed changes (gtmsm eval's fit); with s3 not
   * moving yet, a = 1 and b the offset at the start. */
  function headingFit(n) {
    let hu = run.truth[0].heading, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (let t = 0; t < n; t++) {
      if (t > 0) hu += run.truth[t].d_heading;
      const x = run.memStates[t][2] || 0;
      sx += x; sy += hu; sxx += x * x; sxy += x * hu;
    }
    const mx = sx / n, my = sy / n, vx = sxx / n - mx * mx;
    if (!(vx > 1e-12)) return { a: 1, b: run.truth[0].heading - (run.memStates[0][2] || 0), n };
    const a = (sxy / n - mx * my) / vx;
    return { a, b: my - a * mx, n };
  }

  /* The true and the learned heading now: at the last memorized step, or
   * after the last driven step. */
  function headingNow() {
    const d = run.drive, last = d && d.steps.length ? d.steps[d.steps.length - 1] : null;
    const t = run.memorized - 1;
    const trueH = last ? last.pose.heading : run.truth[t].heading;
    const s3 = (last ? last.state : run.memStates[t])[2] || 0;
    const fit = headingFit(run.memorized);
    const learned = fit.a * s3 + fit.b;
    return { trueH, s3, learned, fit, err: Math.abs(wrapPi(learned - trueH)) };
  }

  function drawDial() {
    const c = ui.dial, g = c.getContext('2d');
    const cx = c.width / 2, cy = c.height / 2, R = c.width / 2 - 28;
    g.clearRect(0, 0, c.width, c.height);
    g.fillStyle = '#ffffff';
    g.strokeStyle = '#c5cad3';
    g.lineWidth = 2;
    g.beginPath();
    g.arc(cx, cy, R, 0, TAU);
    g.fill();
    g.stroke();
    // a tick per turn of the simulator (9 degrees), longer every 45
    for (let i = 0; i < HEADING_BINS; i++) {
      const a = (i * TAU) / HEADING_BINS, long = i % 5 === 0, r0 = R - (long ? 10 : 5);
      g.strokeStyle = long ? '#8b93a1' : '#d9dde4';
      g.lineWidth = long ? 2 : 1;
      g.beginPath();
      g.moveTo(cx + r0 * Math.cos(a), cy - r0 * Math.sin(a));
      g.lineTo(cx + R * Math.cos(a), cy - R * Math.sin(a));
      g.stroke();
    }
    g.fillStyle = '#5d6676';
    g.font = '11px system-ui, sans-serif';
    g.textAlign = 'center';
    g.textBaseline = 'middle';
    for (const [deg, label] of [[0, '0°'], [90, '90°'], [180, '180°'], [270, '270°']]) {
      const a = (deg * Math.PI) / 180;
      g.fillText(label, cx + (R + 15) * Math.cos(a), cy - (R + 13) * Math.sin(a));
    }
    g.textAlign = 'start';
    g.textBaseline = 'alphabetic';
    if (!run || run.env !== 'maze3d' || !run.memorized) {
      if (ui.dialInfo) ui.dialInfo.textContent = 'Memorize first.';
      if (run) run.dialState = null;
      return;
    }
    const h = headingNow();
    const needle = (angle, colour, width, len) => {
      g.strokeStyle = colour;
      g.fillStyle = colour;
      g.lineWidth = width;
      g.lineCap = 'round';
      g.beginPath();
      g.moveTo(cx, cy);
      const x = cx + len * Math.cos(angle), y = cy - len * Math.sin(angle);
      g.lineTo(x, y);
      g.stroke();
      g.beginPath();
      g.arc(x, y, width + 1.5, 0, TAU);
      g.fill();
    };
    needle(h.trueH, '#1c2330', 4, R - 14);
    needle(h.learned, '#2f6fd0', 3, R - 32);
    g.fillStyle = '#1c2330';
    g.beginPath();
    g.arc(cx, cy, 4, 0, TAU);
    g.fill();
    g.lineCap = 'butt';
    const a = h.fit.a.toFixed(2).replace('-', '−');
    ui.dialInfo.textContent = `true ${fmtDeg(h.trueH)}, learned ${fmtDeg(h.learned)}: error ` +
      `${Math.round((h.err * 180) / Math.PI)}° · s3 = ${h.s3.toFixed(3)} rad, fitted over the ${h.fit.n} ` +
      `memorized steps as h ≈ ${a}·s3 + ${fmtDeg(h.fit.b)}`;
    run.dialState = { trueDeg: (wrap2pi(h.trueH) * 180) / Math.PI, learnedDeg: (wrap2pi(h.learned) * 180) / Math.PI,
                      s3: h.s3, a: h.fit.a, b: h.fit.b, errDeg: (h.err * 180) / Math.PI };
  }

  /* Was a pose like this one memorized (within the distance and angle of gtmsm eval)? */
  function seen3d(r, pose) {
    const lim = SEEN3D[r.episode.scenario] || SEEN3D.other, rad = (lim.deg * Math.PI) / 180;
    return r.truth.some((p) => Math.hypot(p.x - pose.x, p.y - pose.y) <= lim.cells &&
      Math.abs(wrapPi(p.heading - pose.heading)) <= rad);
  }

  // ---- driving -------------------------------------------------------------

  function resetDriveView() {
    drawFrame(ui.predFrame, null);
    drawFrame(ui.trueFrame, null);
    ui.psnr.textContent = '—';
    ui.driveInfo.textContent = 'Memorize first.';
    ui.drivePanel.dataset.steps = '0';
    for (const b of ui.pad) b.disabled = true;
    for (const b of ui.pad3d) b.disabled = true;
    ui.driveReset.disabled = true;
    drawPsnrPlot();
    drawStrip();
    drawDial();
  }

  function startDriving() {
    const last = run.truth[run.truth.length - 1];
    if (run.env === 'maze3d') {
      run.drive = { start: last, actions: [], steps: [] };
      drawFrame(ui.trueFrame, run.frames[run.frames.length - 1]);
      const acts = allowedActions(run.model);
      ui.driveInfo.textContent = `At (${last.x.toFixed(2)}, ${last.y.toFixed(2)}) facing ${fmtDeg(last.heading)}, ` +
        `where memorization ended: press ${acts.length < MAZE_ACTIONS.length ? '← or →' : 'an arrow key'}.`;
      for (const b of ui.pad3d) {
        if (b.dataset.title === undefined) b.dataset.title = b.title;
        b.disabled = !acts.includes(b.dataset.action);
        b.title = b.disabled ? `${b.dataset.action}: not in the ${scenarioOf(run.model)} scenario the model was trained on`
          : b.dataset.title;
      }
    } else {
      run.drive = { start: { col: last.col, row: last.row }, actions: [], steps: [] };
      drawFrame(ui.trueFrame, crop(run.world, last.col, last.row));
      ui.driveInfo.textContent = `At (${last.col}, ${last.row}), where memorization ended: press an arrow key.`;
      for (const b of ui.pad) b.disabled = false;
    }
    drawFrame(ui.predFrame, null);
    ui.psnr.textContent = '—';
    ui.drivePanel.dataset.steps = '0';
    ui.driveReset.disabled = false;
    drawWorld();
    drawStates();
    drawDial();
    drawPsnrPlot();
    drawStrip();
    setPhase('driving');
    if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
    ui.drivePanel.focus({ preventScroll: true });
  }

  /* The simulator's rule: a move off the grid or into an obstacle cell does not move. */
  function move(pos, action) {
    const [dc, dr] = MOVES[action];
    const col = pos.col + dc, row = pos.row + dr;
    const stopped = col < 0 || col >= GRID || row < 0 || row >= GRID || (run && run.blocked.has(row * GRID + col));
    return stopped ? { col: pos.col, row: pos.row } : { col, row };
  }

  function drive(action) {
    if (!run || !run.drive) return;
    if (run.env === 'maze3d' ? !allowedActions(run.model).includes(action) : !(action in MOVES)) return;
    const r = run;
    driveQueue = driveQueue.then(() => driveStep(r, action)).catch(() => {});
  }

  async function driveStep(r, action) {
    try {
      await (r.env === 'maze3d' ? predictStep3d(r, action) : predictStep(r, action));
    } catch (e) {
      showError(`Driving (${action})`, e);
    }
  }

  /* Records a driven step (both modes): the predicted and the true frame and
   * their PSNR on screen; returns the mean PSNR over the finite steps so far. */
  function showStep(d, actions, step) {
    d.actions = actions;
    d.steps.push(step);
    clearError();
    drawFrame(ui.predFrame, step.pred);
    drawFrame(ui.trueFrame, step.truth);
    ui.psnr.textContent = fmtPsnr(step.psnr);
    const finite = d.steps.map((s) => s.psnr).filter(Number.isFinite);
    return finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : Infinity;
  }

  async function predictStep(r, action) {
    if (r !== run || r.gen !== generation) return;
    const d = r.drive;
    const from = d.steps.length ? d.steps[d.steps.length - 1].pos : d.start;
    const pos = move(from, action);
    const actions = d.actions.concat([action]);
    let reply;
    try {
      reply = await api('POST', `v1/sessions/${r.sessionId}/predictions`, { json: { actions } });
    } catch (e) {
      showError(`Predicting step ${actions.length}`, e);
      return;
    }
    if (r !== run) return;
    const frame = reply.frames[reply.frames.length - 1];
    const pred = await decodePng(frame.png);
    if (r !== run) return;
    const truth = crop(r.world, pos.col, pos.row);
    const step = { action, pos, pred, truth, psnr: psnr(pred, truth), state: frame.state,
                   seen: r.seenCells.has(pos.row * GRID + pos.col) };
    const mean = showStep(d, actions, step);
    ui.driveInfo.textContent = `Step ${d.steps.length}: ${action} → (${pos.col}, ${pos.row}), ` +
      `${step.seen ? 'seen' : 'not seen'} during memorization · mean PSNR ${fmtPsnr(mean)}`;
    ui.drivePanel.dataset.steps = String(d.steps.length);
    drawWorld();
    drawStates();
    drawPsnrPlot();
    drawStrip();
  }

  /* maze3d: the prediction for every action since memorization and the true
   * frame after them, both from the daemon, in parallel. */
  async function predictStep3d(r, action) {
    if (r !== run || r.gen !== generation) return;
    const d = r.drive;
    const actions = d.actions.concat([action]);
    let pred, truth;
    try {
      [pred, truth] = await Promise.all([
        api('POST', `v1/sessions/${r.sessionId}/predictions`, { json: { actions } }),
        api('POST', 'v1/demo/episodes/step', { json: { model: r.model.name, seed: r.episode.seed,
          steps: r.episode.steps, actions, first: actions.length - 1 } }),
      ]);
    } catch (e) {
      showError(`Predicting step ${actions.length}`, e);
      return;
    }
    if (r !== run) return;
    const frame = pred.frames[pred.frames.length - 1];
    const obs = truth.observations[truth.observations.length - 1];
    const [p, t] = await Promise.all([decodePng(frame.png), decodePng(obs.frame)]);
    if (r !== run) return;
    const pose = obs.truth;
    const step = { action, pose, pred: p, truth: t, psnr: psnr(p, t), state: frame.state, seen: seen3d(r, pose) };
    const mean = showStep(d, actions, step);
    ui.driveInfo.textContent = `Step ${d.steps.length}: ${action} → (${pose.x.toFixed(2)}, ${pose.y.toFixed(2)}) ` +
      `facing ${fmtDeg(pose.heading)}${pose.collided ? ' (bumped)' : ''}, ${step.seen ? 'seen' : 'not seen'} during ` +
      `memorization · mean PSNR ${fmtPsnr(mean)}`;
    ui.drivePanel.dataset.steps = String(d.steps.length);
    drawWorld();
    drawStates();
    drawDial();
    drawPsnrPlot();
    drawStrip();
  }

  function resetDrive() {
    if (!run || !run.drive) return;
    driveQueue = driveQueue.then(() => { if (run && run.drive) startDriving(); });
  }

  function drawPsnrPlot() {
    const c = ui.psnrPlot, g = c.getContext('2d');
    const W = c.width, H = c.height, L = 40, R = 10, T = 24, B = 22;
    g.clearRect(0, 0, W, H);
    const steps = run && run.drive ? run.drive.steps : [];
    const finite = steps.map((s) => s.psnr).filter(Number.isFinite);
    const top = Math.max(40, Math.ceil(Math.max(0, ...finite) / 10) * 10);
    const n = Math.max(20, steps.length);
    const x = (i) => L + ((W - L - R) * (i + 0.5)) / n;
    const y = (p) => T + (H - T - B) * (1 - Math.min(p, top) / top);
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = '#5d6676';
    g.strokeStyle = '#e3e6eb';
    g.lineWidth = 1;
    for (let v = 0; v <= top; v += 10) {
      g.beginPath();
      g.moveTo(L, y(v));
      g.lineTo(W - R, y(v));
      g.stroke();
      g.fillText(`${v}`, 8, y(v) + 4);
    }
    g.fillText('PSNR (dB)', 8, 12);
    g.fillText(`driven step (${steps.length})`, W - R - 110, H - 6);
    if (!steps.length) {
      g.fillText('PSNR of each driven step appears here', L + 10, T + 20);
      return;
    }
    g.strokeStyle = 'rgba(47, 111, 208, 0.6)';
    g.lineWidth = 1.5;
    g.beginPath();
    steps.forEach((s, i) => { const py = y(Number.isFinite(s.psnr) ? s.psnr : top); if (i === 0) g.moveTo(x(i), py); else g.lineTo(x(i), py); });
    g.stroke();
    steps.forEach((s, i) => {
      g.fillStyle = s.seen ? '#2e9e55' : '#d2512d';
      g.beginPath();
      g.arc(x(i), y(Number.isFinite(s.psnr) ? s.psnr : top), 3, 0, 2 * Math.PI);
      g.fill();
    });
  }

  /* The last STRIP driven steps: predicted frames above, true below. */
  function drawStrip() {
    const g = ui.driveStrip.getContext('2d');
    g.clearRect(0, 0, ui.driveStrip.width, ui.driveStrip.height);
    if (!run || !run.drive) return;
    const steps = run.drive.steps.slice(-STRIP);
    steps.forEach((s, i) => {
      g.putImageData(s.pred, i * (run.W + 1), 0);
      g.putImageData(s.truth, i * (run.W + 1), run.H + 1);
    });
  }

  // ---- events --------------------------------------------------------------

  ui.run.addEventListener('click', memorize);
  ui.model.addEventListener('change', showModelInfo);
  ui.photo.addEventListener('change', () => { ui.worldPhoto.checked = true; });
  ui.seed.addEventListener('input', () => { ui.worldProcedural.checked = true; });
  $('error-close').addEventListener('click', clearError);
  $('apikey-apply').addEventListener('click', loadSetup);
  ui.driveReset.addEventListener('click', resetDrive);
  for (const b of ui.pad) b.addEventListener('click', () => drive(b.dataset.action));
  for (const b of ui.pad3d) b.addEventListener('click', () => drive(b.dataset.action));
  document.addEventListener('keydown', (ev) => {
    const action = (run ? run.env === 'maze3d' : document.body.dataset.env === 'maze3d') ? KEYS3D[ev.key] : KEYS[ev.key];
    if (!action || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const tag = ev.target && ev.target.tagName;
    if (tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA') return; // typing a seed, picking a photo
    if (tag === 'BUTTON' && (ev.key === ' ')) return; // the button's own click handles it
    if (!run || !run.drive) return;
    ev.preventDefault();
    drive(action);
  });
  window.addEventListener('pagehide', () => { if (run) deleteSession(run.sessionId, true); });

  // For tests and the curious: a read-only summary of what the page shows.
  window.gtmsmViewer = {
    summary() {
      const d = run && run.drive;
      return {
        phase: document.body.dataset.phase,
        session: run ? run.sessionId : null,
        memorized: run ? run.memorized : 0,
        memStates: run ? run.memStates.length : 0,
        cropMismatches: run ? run.cropMismatches : null,
        obstacles: run && run.blocked ? Array.from(run.blocked).map((k) => ({ col: k % GRID, row: Math.floor(k / GRID) })) : [],
        worldFitRms: run && run.worldFitRms !== undefined ? run.worldFitRms : null,
        env: run ? run.env : document.body.dataset.env,
        frame: run ? [run.W, run.H] : null,
        dial: run ? run.dialState : null,
        steps: d ? d.steps.map((s) => ({
          action: s.action, psnr: Number.isFinite(s.psnr) ? s.psnr : null, seen: s.seen,
          ...(s.pos ? { col: s.pos.col, row: s.pos.row } : { x: s.pose.x, y: s.pose.y, heading: s.pose.heading,
                                                           state: s.state }),
          pred: Array.from(s.pred.data), truth: Array.from(s.truth.data) })) : [],
      };
    },
  };

  loadSetup();
})();
