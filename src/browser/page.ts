/**
 * The training page (web/index.html): picks the text (the bundled slice of the demo mixture, or a dropped file),
 * starts and pauses training in the worker (train-worker.ts), draws loss and tokens/s live with the dashboard's charts
 * (web/charts.ts), shows samples as they come, downloads a single-file checkpoint (with the teacher-forced loss of a
 * held-out window, which `llama-ts score` reproduces), loads a checkpoint or a GGUF file to continue or sample, and
 * samples on request (a prompt, a temperature: 0 is greedy). Bad input shows a one-line message in the page.
 */
import { createCharts } from '../web/charts.js';
import { CHARTS } from '../web/series.js';
import type { FromWorker, ToWorker } from './protocol.js';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const worker = new Worker(new URL('./train-worker.js', import.meta.url), { type: 'module', name: 'training' });
const send = (m: ToWorker, transfer: Transferable[] = []): void => worker.postMessage(m, transfer);

const charts = createCharts($('charts'), { x: 'step', logY: true, height: 200, charts: CHARTS.filter((c) => c.id === 'loss' || c.id === 'tokens_per_s') });
let runId = 0;
/** What the page has seen, for scripts and tests: every step's report, the last checkpoint's score. */
const seen = {
  steps: [] as { step: number; loss: number; tokens_per_s: number }[], threads: 0, isolated: false,
  /** The last answer to the Sample button, and the models loaded so far (each 'run' message). */
  generated: null as { prompt: string; text: string; tokens: number[] } | null,
  runs: 0,
};
(globalThis as { llamaTs?: typeof seen }).llamaTs = seen;
const state = { ready: false, hasText: false, hasModel: false, trainable: false, training: false, step: 0, lastLoss: NaN, lastTps: NaN };

function setError(message: string | null): void {
  const e = $('error');
  e.textContent = message ?? '';
  e.hidden = message === null;
}

function setTraining(on: boolean): void {
  state.training = on;
  $<HTMLButtonElement>('train').textContent = on ? 'Pause' : state.step > 0 ? 'Continue' : 'Train';
  document.body.dataset.training = String(on);
}

function refreshButtons(): void {
  $<HTMLButtonElement>('train').disabled = !(state.ready && state.hasText);
  $<HTMLButtonElement>('save').disabled = !(state.ready && state.hasModel && state.trainable);
  $<HTMLButtonElement>('generate').disabled = !(state.ready && state.hasModel);
}

/** A GGUF file, by its magic bytes ("GGUF"), whatever its name. */
async function isGguf(f: File): Promise<boolean> {
  const b = new Uint8Array(await f.slice(0, 4).arrayBuffer());
  return b.length === 4 && String.fromCharCode(...b) === 'GGUF';
}

async function sendFiles(files: File[]): Promise<void> {
  setError(null);
  const looksLikeCheckpoint = files.some((f) => /\.safetensors$|^state\.json$/i.test(f.name));
  if (files.length === 1 && (await isGguf(files[0]))) {
    const bytes = await files[0].arrayBuffer();
    send({ type: 'gguf', name: files[0].name, bytes }, [bytes]);
  } else if (files.some((f) => /\.gguf$/i.test(f.name))) {
    setError(files.length > 1 ? `drop one GGUF file at a time (got ${files.length} files)` : `'${files[0].name}' is not a GGUF file (it does not start with the bytes GGUF)`);
  } else if (looksLikeCheckpoint) {
    const parts = await Promise.all(files.map(async (f) => ({ name: f.name, bytes: await f.arrayBuffer() })));
    send({ type: 'load', files: parts }, parts.map((p) => p.bytes));
  } else if (files.length === 1) {
    const bytes = await files[0].arrayBuffer();
    send({ type: 'data', name: files[0].name, bytes }, [bytes]);
  } else setError(`drop one text file, a GGUF file, or a checkpoint (.safetensors, or a checkpoint's state.json with its model.safetensors); got ${files.length} files`);
}

worker.onmessage = (e: MessageEvent<FromWorker>) => {
  const m = e.data;
  switch (m.type) {
    case 'ready':
      state.ready = true;
      $('engine').textContent = `wasm ${m.simd}, ${m.threads} thread${m.threads > 1 ? 's' : ''}${m.isolated ? ' (cross-origin isolated)' : ' (not cross-origin isolated: one thread)'}`;
      document.body.dataset.threads = String(m.threads);
      seen.threads = m.threads;
      seen.isolated = m.isolated;
      break;
    case 'data':
      state.hasText = true;
      state.hasModel = false;
      state.step = 0;
      $('data').textContent = `${m.name}: ${m.tokens.toLocaleString('en-US')} bytes`;
      setTraining(false);
      break;
    case 'run':
      runId++;
      charts.setRun(runId, { name: m.resumed ? `resumed at ${m.step}` : 'run', steps: [], evals: [], tokensPerStep: m.batchTokens });
      state.step = m.step;
      state.hasModel = true;
      state.trainable = !m.samplesOnly;
      seen.runs++;
      $('model').textContent = `${m.config}, ${m.params.toLocaleString('en-US')} parameters${m.resumed ? `; continued from step ${m.step}` : ''}${m.from ? `; loaded from ${m.from}` : ''}${m.samplesOnly ? ` (samples only: ${m.samplesOnly})` : ''}`;
      $('step').textContent = String(m.step);
      break;
    case 'step': {
      const r = m.report;
      state.step = r.step;
      state.lastLoss = r.loss;
      state.lastTps = r.tokens_per_s;
      charts.appendPoints(runId, [{ ...r, ms: { ...r.ms } }]);
      seen.steps.push({ step: r.step, loss: r.loss, tokens_per_s: r.tokens_per_s });
      $('step').textContent = String(r.step);
      $('loss').textContent = r.loss.toFixed(4);
      $('tps').textContent = Math.round(r.tokens_per_s).toLocaleString('en-US');
      document.body.dataset.step = String(r.step);
      break;
    }
    case 'sample':
      $('sample').textContent = `step ${m.step}: ${m.text}`;
      break;
    case 'paused':
      setTraining(false);
      break;
    case 'generated':
      $('sample').textContent = `${m.prompt}${m.text}`;
      seen.generated = { prompt: m.prompt, text: m.text, tokens: m.tokens };
      break;
    case 'checkpoint': {
      const url = URL.createObjectURL(new Blob([m.bytes], { type: 'application/octet-stream' }));
      const a = $<HTMLAnchorElement>('download');
      a.href = url;
      a.download = m.name;
      a.hidden = false;
      a.textContent = `${m.name} (${(m.bytes.byteLength / 1e6).toFixed(1)} MB)`;
      a.dataset.ids = JSON.stringify(m.ids);
      a.dataset.score = String(m.score);
      $('score').textContent = `held-out loss of the saved model on ${m.ids.length} tokens: ${m.score.toFixed(6)}`;
      a.click();
      break;
    }
    case 'error':
      setError(m.message);
      setTraining(false);
      break;
  }
  refreshButtons();
};
worker.onerror = (e) => setError(`the training worker failed: ${e.message}`);

$('train').addEventListener('click', () => {
  setError(null);
  if (state.training) send({ type: 'pause' });
  else {
    send({ type: 'train' });
    setTraining(true);
  }
});
$('save').addEventListener('click', () => send({ type: 'save' }));
$('sampler').addEventListener('submit', (e) => {
  e.preventDefault();
  setError(null);
  const temperature = Number($<HTMLInputElement>('temperature').value);
  const maxTokens = Number($<HTMLInputElement>('max-tokens').value);
  if (!(temperature >= 0)) return setError('the temperature is a number >= 0 (0: greedy)');
  if (!(Number.isInteger(maxTokens) && maxTokens >= 1)) return setError('the number of tokens to sample is a whole number >= 1');
  send({ type: 'generate', prompt: $<HTMLInputElement>('prompt').value, temperature, maxTokens });
});
$<HTMLInputElement>('file').addEventListener('change', (e) => void sendFiles([...((e.target as HTMLInputElement).files ?? [])]));
const drop = $('drop');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.dataset.over = 'true';
});
drop.addEventListener('dragleave', () => delete drop.dataset.over);
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  delete drop.dataset.over;
  void sendFiles([...(e.dataTransfer?.files ?? [])]);
});

// start: the engine (URL options ?preset=NAME&batch=B&seq=T&steps=N&threads=N, for benchmarks), then the bundled text
const q = new URLSearchParams(location.search);
const given = Object.fromEntries(['batch', 'seq', 'steps', 'warmup'].filter((k) => q.has(k)).map((k) => [k, Number(q.get(k))]));
send({ type: 'init', preset: q.get('preset') ?? undefined, hyper: given, threads: q.has('threads') ? Number(q.get('threads')) : undefined });
void fetch(new URL('./sample.txt', import.meta.url)).then(async (r) => {
  if (!r.ok) return setError('the bundled text is missing: drop a text file');
  const bytes = await r.arrayBuffer();
  send({ type: 'data', name: 'bundled sample (demo mixture)', bytes }, [bytes]);
});
