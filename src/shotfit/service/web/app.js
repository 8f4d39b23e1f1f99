// The page: sign in, shots, uploads, jobs watched live, the rendered shot. Plain modules, no build step.
import { blob, call, download, events, key, newId } from "./api.js";
import { LossChart } from "./chart.js";
import { uploadFile } from "./upload.js";
import { frameNumber, showable, Viewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);
const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const PARALLEL_UPLOADS = 3;

const state = {
  shot: null,
  job: null,
  watching: null, // AbortController of the job being watched
};
const chart = new LossChart($("loss-chart"));
const viewer = new Viewer($("results"));

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function say(text, error = false) {
  const box = $("message");
  box.textContent = text;
  box.className = error ? "error" : "";
  box.hidden = !text;
}

// Every action goes through here: its error becomes the one line at the top; a refused key signs out.
const guarded = (action) => async (...args) => {
  try {
    return await action(...args);
  } catch (error) {
    if (error.name === "AbortError") return;
    if (error.status === 401) signOut();
    say(error.message || String(error), true);
  }
};

// --- signing in -------------------------------------------------------------------------------

async function signIn(value) {
  key.set(value);
  try {
    const me = await call("GET", "v1/me");
    $("studio").textContent = `Studio: ${me.studio}`;
  } catch (error) {
    key.clear();
    throw error.status === 401 ? Object.assign(new Error("That key was not accepted."), { status: 0 }) : error;
  }
  $("sign-in").hidden = true;
  $("workspace").hidden = false;
  $("sign-out").hidden = false;
  say("");
  await loadShots();
}

function signOut() {
  key.clear();
  state.watching?.abort();
  Object.assign(state, { shot: null, job: null, watching: null });
  $("studio").textContent = "";
  $("sign-in").hidden = false;
  for (const id of ["workspace", "sign-out", "shot", "job", "results"]) $(id).hidden = true;
}

// --- shots ------------------------------------------------------------------------------------

async function loadShots() {
  const shots = await call("GET", "v1/shots");
  $("shots").replaceChildren(...shots.map((shot) => {
    const button = el("button", { type: "button", textContent: shot.name, className: "link" });
    button.addEventListener("click", guarded(() => selectShot(shot)));
    return el("li", { className: shot.id === state.shot?.id ? "current" : "" }, button);
  }));
}

function showCounts(shot) {
  const files = shot.files || {};
  $("shot-counts").textContent =
    `${files.source ?? 0} plates · ${files.keyframes ?? 0} keyframes · ${files.truth ?? 0} ground truth`;
}

async function selectShot(shot) {
  state.watching?.abort();
  state.shot = shot;
  state.job = null;
  $("shot-title").textContent = shot.name;
  showCounts(shot);
  $("uploads").replaceChildren();
  for (const id of ["job", "results"]) $(id).hidden = true;
  $("shot").hidden = false;
  await Promise.all([loadShots(), loadJobs()]);
}

async function refreshShot() {
  state.shot = await call("GET", `v1/shots/${state.shot.id}`);
  showCounts(state.shot);
}

// --- uploads ----------------------------------------------------------------------------------

function uploadRow(role, file) {
  const bar = el("progress", { max: file.size || 1, value: 0 });
  const status = el("span", { className: "muted", textContent: "waiting" });
  const row = el("li", { className: "upload" }, el("span", { textContent: `${role}: ${file.name}` }), bar, status);
  $("uploads").append(row);
  return {
    progress(done, total) {
      bar.value = done;
      status.textContent = `${Math.floor((100 * done) / (total || 1))}%`;
    },
    finish(text, error = false) {
      status.textContent = text;
      status.className = error ? "error" : "done";
    },
  };
}

async function uploadAll(role, files) {
  if (!state.shot || !files.length) return;
  const shot = state.shot;
  const queue = [...files].map((file) => ({ file, row: uploadRow(role, file) }));
  let failed = 0;
  const worker = async () => {
    for (let item = queue.shift(); item; item = queue.shift()) {
      try {
        await uploadFile(shot.id, role, item.file, (done, total) => item.row.progress(done, total));
        item.row.finish("uploaded");
      } catch (error) {
        failed += 1;
        item.row.finish(error.message, true);
      }
    }
  };
  await Promise.all(Array.from({ length: PARALLEL_UPLOADS }, worker));
  if (state.shot?.id === shot.id) await refreshShot();
  say(failed ? `${failed} of ${files.length} files were not uploaded: see the list.` : "", failed > 0);
}

function wireDrops() {
  for (const zone of document.querySelectorAll(".drop")) {
    const { role } = zone.dataset;
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", guarded(async (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      await uploadAll(role, e.dataTransfer.files);
    }));
    const input = zone.querySelector("input[type=file]");
    input.addEventListener("change", guarded(async () => {
      const files = [...input.files];
      input.value = "";
      await uploadAll(role, files);
    }));
  }
  // a file dropped beside a zone must not replace the page
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
}

// --- jobs -------------------------------------------------------------------------------------

/** "train.steps=200" lines -> {"train.steps": 200}: JSON values where they parse, text otherwise. */
function parseSettings(text) {
  const settings = {};
  for (const [n, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const at = line.indexOf("=");
    if (at < 1) throw new Error(`Settings line ${n + 1}: expected section.key=value, got "${line}"`);
    const value = line.slice(at + 1).trim();
    try { settings[line.slice(0, at).trim()] = JSON.parse(value); } catch { settings[line.slice(0, at).trim()] = value; }
  }
  return settings;
}

async function submit(body, button) {
  button.disabled = true; // one click, one job (and the Idempotency-Key covers a retried request)
  try {
    return await call("POST", "v1/jobs", body, { "Idempotency-Key": newId() });
  } finally {
    button.disabled = false;
  }
}

async function startTraining(e) {
  e.preventDefault();
  const settings = { ...parseSettings($("settings").value), "train.steps": Number($("steps").value) };
  const job = await submit({ kind: "train", shot_id: state.shot.id, settings }, $("train"));
  await openJob(job);
  await loadJobs();
}

async function startRender() {
  const train = state.job;
  const job = await submit({ kind: "render", shot_id: train.shot_id, run_id: train.id, settings: {} }, $("render"));
  await openJob(job);
  await loadJobs();
}

function describe(job) {
  const p = job.progress || {};
  const parts = [job.kind, job.state];
  if (p.steps) parts.push(`step ${p.step ?? 0} / ${p.steps}`);
  if (p.losses?.total !== undefined) parts.push(`loss ${Number(p.losses.total).toPrecision(3)}`);
  if (p.frames_total) parts.push(`${p.frames_done ?? 0} / ${p.frames_total} frames`);
  if (p.fps) parts.push(`${Number(p.fps).toFixed(2)} frames/s`);
  if (p.eta_s && !FINAL.has(job.state)) parts.push(`about ${Math.ceil(p.eta_s)} s left`);
  if (job.mlflow_run_id) parts.push(`MLflow run ${job.mlflow_run_id}`);
  return parts.join(" · ");
}

async function loadJobs() {
  if (!state.shot) return;
  const jobs = (await call("GET", "v1/jobs")).filter((job) => job.shot_id === state.shot.id);
  $("jobs").replaceChildren(...jobs.map((job) => {
    const button = el("button", { type: "button", className: "link", textContent: `${job.kind} ${job.id}` });
    button.addEventListener("click", guarded(() => openJob(job)));
    return el("li", { className: job.id === state.job?.id ? "current" : "" }, button,
      el("span", { className: `state ${job.state}`, textContent: job.state }));
  }));
}

async function openJob(job) {
  state.watching?.abort();
  state.job = job;
  $("job-title").textContent = `${job.kind === "train" ? "Training" : job.kind[0].toUpperCase() + job.kind.slice(1)} job ${job.id}`;
  $("live").hidden = job.kind !== "train";
  $("preview-figure").hidden = true;
  $("results").hidden = true;
  $("job").hidden = false;
  chart.clear();
  await watch(job);
}

async function showPreview(url) {
  try {
    const old = $("preview").src;
    $("preview").src = URL.createObjectURL(await blob(url));
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    $("preview-figure").hidden = false;
  } catch (error) {
    if (error.status !== 404) throw error; // none yet
  }
}

async function update(job) {
  if (state.job?.id !== job.id) return;
  const changed = state.job.state !== job.state;
  state.job = job;
  $("job-status").textContent = describe(job);
  $("job-error").textContent = job.error || "";
  $("job-error").hidden = !job.error;
  if (job.kind === "train" && job.progress?.step) chart.add(job.progress.step, job.progress.losses);
  $("cancel").hidden = FINAL.has(job.state);
  $("render").hidden = !(job.kind === "train" && job.state === "succeeded");
  if (changed) await loadJobs();
  if (job.state === "succeeded" && job.kind === "train") await showPreview(`v1/jobs/${job.id}/previews/latest.png`);
  if (job.state === "succeeded") await loadResults(job);
}

async function poll(job, signal) {
  while (!signal.aborted && !FINAL.has(state.job.state)) {
    await new Promise((done) => setTimeout(done, 1500));
    if (!signal.aborted) await update(await call("GET", `v1/jobs/${job.id}`));
  }
}

// Live progress from the event stream; if the stream breaks, polling carries on until a final state.
async function watch(job) {
  const controller = new AbortController();
  state.watching = controller;
  await update(job);
  if (FINAL.has(job.state)) return;
  try {
    for await (const { event, data } of events(`v1/jobs/${job.id}/events`, controller.signal)) {
      const body = JSON.parse(data);
      if (event === "preview") await showPreview(body.url);
      else if (event === "progress" || event === "state") await update(body);
    }
  } catch (error) {
    if (error.name === "AbortError") return;
  }
  if (!controller.signal.aborted) {
    await update(await call("GET", `v1/jobs/${job.id}`));
    await poll(job, controller.signal);
  }
}

async function cancel() {
  await update(await call("POST", `v1/jobs/${state.job.id}/cancel`));
}

// --- results ----------------------------------------------------------------------------------

async function loadResults(job) {
  const files = await call("GET", `v1/jobs/${job.id}/results`);
  $("result-files").replaceChildren(...files.map((file) => {
    const button = el("button", { type: "button", className: "link", textContent: `${file.name}` });
    button.addEventListener("click", guarded(() => download(file.url, file.name)));
    return el("li", {}, button, el("span", { className: "muted", textContent: ` ${formatSize(file.size)}` }));
  }));
  $("results-title").textContent = job.kind === "render" ? "Rendered shot" : `Results of ${job.kind} job ${job.id}`;
  $("results").hidden = false;
  if (job.kind !== "render") {
    $("viewer").hidden = $("viewer-note").hidden = true;
    return;
  }
  // the "before" side: each plate from its download URL, matched to its render by frame number
  const plates = await call("GET", `v1/shots/${job.shot_id}/files?role=source`);
  const byNumber = new Map(plates.filter((p) => showable(p.name)).map((p) => [frameNumber(p.name), p.url]));
  const frames = files.filter((f) => showable(f.name)).sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }))
    .map((f) => ({ name: f.name, after: f.url, before: byNumber.get(frameNumber(f.name)) ?? null }));
  $("viewer").hidden = !frames.length;
  const note = !frames.length ? "The rendered frames are in a format a browser cannot show (EXR, DPX, TIFF): download them to view."
    : frames.some((f) => !f.before) ? "Plates a browser cannot show (EXR, DPX, TIFF, a video) are left out of the before side." : "";
  $("viewer-note").textContent = note;
  $("viewer-note").hidden = !note;
  await viewer.load(frames);
}

function formatSize(bytes) {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  for (; bytes >= 1024 && i < units.length - 1; i++) bytes /= 1024;
  return `${bytes.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// --- wiring -----------------------------------------------------------------------------------

$("sign-in-form").addEventListener("submit", guarded(async (e) => {
  e.preventDefault();
  await signIn($("key").value.trim());
  $("key").value = "";
}));
$("sign-out").addEventListener("click", () => { signOut(); say(""); });
$("new-shot").addEventListener("submit", guarded(async (e) => {
  e.preventDefault();
  const shot = await call("POST", "v1/shots", { name: $("shot-name").value.trim() });
  $("shot-name").value = "";
  await selectShot(shot);
}));
$("train-form").addEventListener("submit", guarded(startTraining));
$("render").addEventListener("click", guarded(startRender));
$("cancel").addEventListener("click", guarded(cancel));
$("download-zip").addEventListener("click", guarded(() =>
  download(`v1/jobs/${state.job.id}/results.zip`, `${state.shot?.name || "shot"}-${state.job.id}.zip`)));
wireDrops();

if (key.get()) guarded(signIn)(key.get());
