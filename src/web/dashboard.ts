/**
 * The dashboard page (web/dashboard.html): listens to the server's event stream (/api/events: a `snapshot` per run
 * on connect or when its log was rewritten, then `append` with the new records and the run's state) and shows each
 * run's card (state, progress, ETA, checkpoint, config and settings), the charts (charts.ts) and the samples.
 */
import { createCharts } from './charts.js';
import { runColor, thin, type EvalPoint, type StepPoint, type XAxis } from './series.js';
import { formatDuration, formatValue } from './format.js';

/** The part of run.json (training/metrics.ts RunInfo) the page shows. */
interface Info {
  pid: number;
  host: string;
  started: string;
  status: string;
  startStep: number;
  stopAt: number;
  steps: number;
  world: number;
  tokensPerStep: number | null;
  config: unknown;
  hyper: Record<string, number> | null;
  checkpoint: { path: string; step: number } | null;
  error: string | null;
}

interface Sample {
  step: number;
  prompt: string;
  sample: string;
}

interface Snapshot {
  id: number;
  name: string;
  dir: string;
  state: string;
  detail: string;
  info: Info | null;
  steps: StepPoint[];
  evals: EvalPoint[];
  samples: Sample[];
  malformed: number;
}

interface Append {
  id: number;
  steps: StepPoint[];
  evals: EvalPoint[];
  samples: Sample[];
  state: string;
  detail: string;
  info: Info | null;
  malformed: number;
}

const $ = <T extends HTMLElement>(sel: string) => document.querySelector(sel) as T;
const el = (tag: string, cls?: string, text?: string) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

const runs = new Map<number, Snapshot>();
const charts = createCharts($('#charts'), { logY: $<HTMLInputElement>('#log-y').checked, x: $<HTMLSelectElement>('#x-axis').value as XAxis });

$('#x-axis').addEventListener('change', (e) => charts.setOptions({ x: (e.target as HTMLSelectElement).value as XAxis }));
$('#log-y').addEventListener('change', (e) => charts.setOptions({ logY: (e.target as HTMLInputElement).checked }));
$('#smoothing').addEventListener('input', (e) => {
  const v = Number((e.target as HTMLInputElement).value);
  $('#smoothing-value').textContent = v.toFixed(2);
  charts.setOptions({ smoothing: v });
});

function chartRun(s: Snapshot) {
  return { name: s.name, steps: s.steps, evals: s.evals, tokensPerStep: s.info?.tokensPerStep ?? null };
}

function onSnapshot(s: Snapshot): void {
  runs.set(s.id, s);
  charts.setRun(s.id, chartRun(s));
  renderRun(s);
  renderSamples();
}

function onAppend(a: Append): void {
  const s = runs.get(a.id);
  if (!s) return;
  const tokensBefore = s.info?.tokensPerStep ?? null;
  s.steps.push(...a.steps);
  s.evals.push(...a.evals);
  if (s.steps.length > 8000) s.steps = thin(s.steps); // the charts keep their own copy, thinned alike
  if (s.evals.length > 8000) s.evals = thin(s.evals);
  s.samples.push(...a.samples);
  if (s.samples.length > 50) s.samples.splice(0, s.samples.length - 50);
  Object.assign(s, { state: a.state, detail: a.detail, info: a.info, malformed: a.malformed });
  if ((a.info?.tokensPerStep ?? null) !== tokensBefore) charts.setRun(s.id, chartRun(s));
  else {
    charts.appendPoints(s.id, a.steps);
    charts.appendEvals(s.id, a.evals);
  }
  renderRun(s);
  if (a.samples.length) renderSamples();
}

/** Seconds left from the mean step time of the last 20 steps. */
function eta(s: Snapshot, last: StepPoint | undefined): number {
  if (!last || !s.info) return NaN;
  const recent = s.steps.slice(-20).map((p) => p.ms.total).filter((v) => Number.isFinite(v));
  if (recent.length === 0) return NaN;
  const mean = recent.reduce((a, b) => a + b, 0) / recent.length;
  return ((s.info.stopAt - last.step) * mean) / 1000;
}

function renderRun(s: Snapshot): void {
  let card = document.getElementById(`run-${s.id}`);
  if (!card) {
    card = el('article', 'run');
    card.id = `run-${s.id}`;
    card.style.setProperty('--run-color', runColor(s.id));
    const list = $('#runs');
    const after = [...list.children].find((c) => Number((c as HTMLElement).dataset.id) > s.id);
    card.dataset.id = String(s.id);
    list.insertBefore(card, after ?? null);
  }
  const last = s.steps[s.steps.length - 1];
  const info = s.info;
  card.dataset.state = s.state;
  card.dataset.lastStep = last ? String(last.step) : '';
  card.replaceChildren();
  const h = el('h3');
  h.append(el('span', 'name', s.name));
  const badge = el('span', 'state', s.state);
  badge.dataset.state = s.state;
  h.append(badge);
  card.append(h, el('div', 'detail', s.detail));
  const done = last?.step ?? info?.startStep ?? 0;
  const total = info?.stopAt ?? null;
  const bar = el('div', 'progress');
  const fill = el('div');
  fill.style.width = total ? `${Math.min(100, (100 * done) / total)}%` : '0';
  bar.append(fill);
  card.append(bar);
  const facts = el('dl', 'facts');
  const fact = (k: string, v: string) => facts.append(el('dt', '', k), el('dd', '', v));
  fact('step', `${done}${total ? ` / ${total}` : ''}${info && info.stopAt !== info.steps ? ` (schedule ${info.steps})` : ''}`);
  if (last) fact('loss', `${formatValue(last.loss)}  lr ${formatValue(last.lr)}  |g| ${formatValue(last.grad_norm)}`);
  const ev = s.evals[s.evals.length - 1];
  if (ev) fact('held-out', `${formatValue(ev.eval_loss)} at step ${ev.step}`);
  if (last) fact('speed', `${formatValue(last.tokens_per_s)} tok/s, MFU ${formatValue(last.mfu * 100)} %`);
  if (s.state === 'running') fact('ETA', formatDuration(eta(s, last)));
  const hp = info?.hyper;
  if (hp) fact('settings', `lr ${formatValue(hp.lr)}, batch ${hp.batch} × ${hp.seq}${hp.accum > 1 ? ` × ${hp.accum}` : ''}${info!.world > 1 ? `, ${info!.world} ranks` : ''}, warmup ${hp.warmup}`);
  fact('checkpoint', info?.checkpoint ? `step ${info.checkpoint.step}: ${info.checkpoint.path}` : 'none yet');
  if (s.malformed) fact('skipped', `${s.malformed} malformed line${s.malformed > 1 ? 's' : ''}`);
  card.append(facts);
  if (info) {
    const d = el('details');
    d.append(el('summary', '', 'config and settings'));
    d.append(el('pre', '', JSON.stringify({ config: info.config, hyper: info.hyper, world: info.world, pid: info.pid, host: info.host, started: info.started }, null, 1)));
    card.append(d);
  }
}

function renderSamples(): void {
  const box = $('#samples');
  const all = [...runs.values()].flatMap((r) => r.samples.map((s) => ({ run: r, s }))).sort((a, b) => b.s.step - a.s.step).slice(0, 12);
  if (all.length === 0) return;
  box.replaceChildren(
    ...all.map(({ run, s }) => {
      const d = el('div', 'sample');
      d.append(el('div', 'meta', `${run.name} · step ${s.step}`));
      const pre = el('pre');
      pre.append(el('b', '', s.prompt), document.createTextNode(s.sample));
      d.append(pre);
      return d;
    }),
  );
}

function connect(): void {
  const source = new EventSource('/api/events');
  const status = $('#connection');
  source.addEventListener('open', () => {
    status.textContent = 'live';
    status.dataset.connected = 'true';
  });
  source.addEventListener('error', () => {
    status.textContent = 'disconnected (retrying)';
    status.dataset.connected = 'false';
  });
  source.addEventListener('snapshot', (e) => onSnapshot(JSON.parse((e as MessageEvent).data)));
  source.addEventListener('append', (e) => onAppend(JSON.parse((e as MessageEvent).data)));
}

connect();
