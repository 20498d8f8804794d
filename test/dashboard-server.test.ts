/**
 * The dashboard server without a browser: the tail of train.jsonl (torn last line, malformed lines skipped and
 * counted, a rewritten log, bounded memory), run states from run.json and the writer's pid, path traversal refused,
 * a run directory deleted while watched, and 50 pages loading at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { request, type ClientRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDashboard } from '../src/dashboard/server.js';
import { RunLog } from '../src/dashboard/runlog.js';
import { fakeRun, append, stepLine, deadPid } from './helpers/dashboard.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'llama-ts-dash-'));

/** A raw GET (the path is sent as written: no client-side normalisation of ../). */
function get(port: number, path: string): Promise<{ status: number; body: string; type: string }> {
  return new Promise((ok, fail) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => ok({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) }));
    });
    req.on('error', fail);
    req.end();
  });
}

/** Opens the event stream and calls `onEvent` with each complete event's name and parsed data. */
function subscribe(port: number, onEvent: (event: string, data: any) => void, onError: (e: Error) => void = () => {}): ClientRequest {
  const req = request({ host: '127.0.0.1', port, path: '/api/events' }, (res) => {
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (ev && data) onEvent(ev, JSON.parse(data));
      }
    });
  });
  req.on('error', onError);
  req.end();
  return req;
}

/** Connects to the event stream and resolves with the events received until `until` says stop. */
function events(port: number, until: (evs: { event: string; data: any }[]) => boolean): Promise<{ event: string; data: any }[]> {
  return new Promise((ok, fail) => {
    const evs: { event: string; data: any }[] = [];
    const req = subscribe(port, (event, data) => {
      evs.push({ event, data });
      if (until(evs)) {
        req.destroy();
        ok(evs);
      }
    }, (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? ok(evs) : fail(e)));
  });
}

test('the tail: a torn last line waits for its newline, malformed lines are skipped and counted, a rewritten log starts over', () => {
  const dir = fakeRun(join(tmp(), 'run'), 5);
  const log = new RunLog(dir, 0, { quietMs: 60_000 });
  let u = log.poll();
  assert.equal(u.steps.length, 5);
  assert.equal(u.evals.length, 1);
  const line = stepLine(6);
  append(dir, line.slice(0, 20)); // the writer is mid-line
  u = log.poll();
  assert.equal(u.steps.length, 0);
  assert.equal(log.snapshot().malformed, 0);
  append(dir, line.slice(20) + '{"step": 7, "loss": oops}\n[1,2]\n\n' + stepLine(8));
  u = log.poll();
  assert.deepEqual(u.steps.map((p) => p.step), [6, 8]);
  assert.equal(log.snapshot().malformed, 2);
  assert.equal(u.reset, false);
  // a fresh run (or a resume) rewrites the log: the reader starts over
  fakeRun(dir, 3);
  u = log.poll();
  assert.equal(u.reset, true);
  assert.deepEqual(log.snapshot().steps.map((p) => p.step), [1, 2, 3]);
  assert.equal(log.snapshot().malformed, 0);
});

test('memory stays bounded on a long run: the older half is thinned, recent steps stay whole', () => {
  const dir = fakeRun(join(tmp(), 'long'), 0);
  let text = '';
  for (let s = 1; s <= 5000; s++) text += stepLine(s);
  append(dir, text);
  const log = new RunLog(dir, 0, { maxPoints: 200 });
  log.poll();
  const steps = log.snapshot().steps.map((p) => p.step);
  assert.ok(steps.length <= 200, `${steps.length} points kept`);
  assert.equal(steps[0], 1);
  assert.equal(steps[steps.length - 1], 5000);
  assert.deepEqual(steps.slice(-50), Array.from({ length: 50 }, (_, i) => 4951 + i), 'the latest steps are all there');
  assert.ok(steps.every((s, i) => i === 0 || s > steps[i - 1]));
});

test('run states: running (pid alive), crashed (pid gone, no end), ended, diverged, missing, waiting', () => {
  const d = tmp();
  const state = (dir: string) => {
    const l = new RunLog(dir, 0, { quietMs: 0 });
    l.poll();
    return l.snapshot().state;
  };
  assert.equal(state(fakeRun(join(d, 'a'), 3)), 'running');
  assert.equal(state(fakeRun(join(d, 'b'), 3, { pid: deadPid() })), 'crashed');
  assert.equal(state(fakeRun(join(d, 'c'), 3, { status: 'finished' })), 'ended');
  assert.equal(state(fakeRun(join(d, 'd'), 3, { status: 'diverged', error: 'training diverged' })), 'diverged');
  assert.equal(state(join(d, 'nothing')), 'missing');
  const e = fakeRun(join(d, 'e'), 0);
  rmSync(join(e, 'train.jsonl'));
  rmSync(join(e, 'run.json'));
  assert.equal(state(e), 'waiting');
  // another host's process cannot be checked: only a long silence makes it stalled
  assert.equal(state(fakeRun(join(d, 'f'), 3, { pid: deadPid(), host: 'elsewhere' })), 'running');
});

test('read-only, by name only: ../ and encoded traversal refused, no listing, assets from a fixed table', async () => {
  const dir = fakeRun(join(tmp(), 'run'), 3);
  writeFileSync(join(tmp(), 'secret.txt'), 'secret');
  const dash = await startDashboard({ runs: [dir], port: 0, pollMs: 50 });
  try {
    const p = dash.port;
    assert.equal((await get(p, '/')).status, 200);
    assert.equal((await get(p, '/static/uPlot.esm.js')).status, 200);
    const own = await get(p, '/runs/0/train.jsonl');
    assert.equal(own.status, 200);
    assert.equal(own.body, readFileSync(join(dir, 'train.jsonl'), 'utf8'));
    for (const bad of ['/static/../../package.json', '/static/..%2F..%2Fpackage.json', '/runs/0/../../../etc/passwd', '/runs/0/..%2F..%2Fetc%2Fpasswd', '/runs/0/%2e%2e', '/runs/0/..', '/%2e%2e/package.json', '/runs/0/a%5C..%5Cb', '/runs/0/x%00']) {
      const r = await get(p, bad);
      assert.ok(r.status === 400 || r.status === 404, `${bad}: ${r.status}`);
      assert.doesNotMatch(r.body, /secret|root:|"name": "llama-ts"/);
    }
    for (const none of ['/runs/0/', '/runs/0', '/static/', '/runs/1/train.jsonl', '/runs/0/.hidden', '/static/server.js', '/runs/0/checkpoints']) {
      assert.equal((await get(p, none)).status, 404, none);
    }
    const post = await new Promise<number>((ok) => request({ host: '127.0.0.1', port: p, path: '/', method: 'POST' }, (res) => ok(res.statusCode ?? 0)).end());
    assert.equal(post, 405);
  } finally {
    await dash.close();
  }
});

test('the server survives a run directory deleted while watched, and 50 pages loading at once', async () => {
  const d = tmp();
  const gone = fakeRun(join(d, 'gone'), 5);
  const live = fakeRun(join(d, 'live'), 5);
  const dash = await startDashboard({ runs: [gone, live], port: 0, pollMs: 50 });
  try {
    const first = await events(dash.port, (e) => e.filter((x) => x.event === 'snapshot').length === 2);
    assert.deepEqual(first.map((e) => e.data.name), ['gone', 'live']);
    const later = events(dash.port, (e) => e.some((x) => x.event === 'append' && x.data.id === 0 && x.data.state === 'missing') && e.some((x) => x.event === 'append' && x.data.id === 1 && x.data.steps.length));
    await new Promise((r) => setTimeout(r, 100));
    rmSync(gone, { recursive: true });
    append(live, stepLine(6));
    const seen = await later;
    assert.ok(seen.some((x) => x.event === 'append' && x.data.id === 1 && x.data.steps[0].step === 6));
    // 50 concurrent loads: the page, its script and the event stream's first snapshot each
    const loads = Array.from({ length: 50 }, async () => {
      const [page, js, evs] = await Promise.all([get(dash.port, '/'), get(dash.port, '/static/charts.js'), events(dash.port, (e) => e.length >= 2)]);
      return page.status === 200 && js.status === 200 && evs[0].event === 'snapshot';
    });
    assert.deepEqual(new Set(await Promise.all(loads)), new Set([true]));
    const runs = JSON.parse((await get(dash.port, '/api/runs')).body);
    assert.deepEqual(runs.map((r: { state: string }) => r.state), ['missing', 'running']);
  } finally {
    await dash.close();
  }
});

test('a page that stops reading is disconnected once its unread events pass the cap; the others keep receiving', async () => {
  const d = tmp();
  const run = fakeRun(join(d, 'run'), 5);
  const dash = await startDashboard({ runs: [run], port: 0, pollMs: 60_000, maxClientBuffer: 1 << 20 });
  try {
    // a client that sends its request and then never reads
    const stalled = connect(dash.port, '127.0.0.1');
    await new Promise<void>((ok) => stalled.on('connect', () => ok()));
    stalled.write('GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    stalled.pause();
    // a client that reads everything: the last step it has seen
    let last = 0;
    const reader = subscribe(dash.port, (event, data) => {
      if (event === 'append') last = Math.max(last, ...data.steps.map((x: { step: number }) => x.step));
    });
    await new Promise((r) => setTimeout(r, 200));
    // batches of 2000 steps (~0.4 MB of events each) until the server hangs up on the stalled client (socket
    // buffers first absorb some); the reading client receives every batch before the next is written. (The paused
    // client itself does not notice: it reads nothing, not even the end of the stream; the server's count shows it.)
    const connections = () => new Promise<number>((ok, fail) => dash.server.getConnections((e, n) => (e ? fail(e) : ok(n))));
    assert.equal(await connections(), 2);
    let step = 5;
    for (let b = 0; b < 400 && (await connections()) === 2; b++) {
      append(run, Array.from({ length: 2000 }, () => stepLine(++step)).join(''));
      dash.poll();
      const deadline = Date.now() + 10_000;
      while (last < step && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      assert.equal(last, step, 'the reading page received the batch');
    }
    assert.equal(await connections(), 1, `the stalled page was disconnected (after ${step - 5} steps)`);
    append(run, stepLine(++step));
    dash.poll();
    const deadline = Date.now() + 10_000;
    while (last < step && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.equal(last, step, 'the reading page is still served');
    reader.destroy();
    stalled.destroy();
  } finally {
    await dash.close();
  }
});

test('a second server on a busy port is a one-line error; a non-loopback host is flagged', async () => {
  const dir = fakeRun(join(tmp(), 'run'), 1);
  const a = await startDashboard({ runs: [dir], port: 0 });
  try {
    await assert.rejects(startDashboard({ runs: [dir], port: a.port }), /port \d+ on 127\.0\.0\.1 is in use: choose another port/);
  } finally {
    await a.close();
  }
  const { isLoopback } = await import('../src/dashboard/server.js');
  assert.equal(isLoopback('127.0.0.1'), true);
  assert.equal(isLoopback('0.0.0.0'), false);
});
