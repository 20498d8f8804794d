/** The MFU peak: one figure for train, the demo and bench train (kernels/peak.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { peakFlops, nominalPeakFlops } from '../src/kernels/peak.js';
import { createRefBackend } from '../src/kernels/ref.js';
import { skip, native } from './helpers/native.js';

function withEnv<T>(env: Record<string, string | undefined>, f: () => T): T {
  const old = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  try {
    return f();
  } finally {
    for (const [k, v] of Object.entries(old)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  }
}

test('LLAMA_TS_PEAK_GFLOPS overrides; the ref backend gets the nominal upper bound with the CPU\'s SIMD width', () => {
  withEnv({ LLAMA_TS_PEAK_GFLOPS: '123' }, () => assert.deepEqual(peakFlops(createRefBackend()), { flops: 123e9, source: 'LLAMA_TS_PEAK_GFLOPS' }));
  withEnv({ LLAMA_TS_PEAK_GFLOPS: undefined }, () => {
    const p = peakFlops(createRefBackend());
    assert.equal(p.flops, nominalPeakFlops());
    const flags = readFileSync('/proc/cpuinfo', 'utf8');
    const perCycle = /\bavx512f\b/.test(flags) ? 64 : /\bavx2\b/.test(flags) && /\bfma\b/.test(flags) ? 32 : 16;
    assert.ok(p.flops > 0 && p.flops % perCycle === 0, `${p.flops} is cores × Hz × ${perCycle}`);
  });
});

test('native: measured once per machine and cached; a re-measurement keeps the best figure', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'llama-ts-peak-'));
  withEnv({ LLAMA_TS_PEAK_GFLOPS: undefined, LLAMA_TS_CACHE_DIR: dir }, () => {
    const be = native();
    const a = peakFlops(be);
    assert.ok(existsSync(join(dir, 'peak.json')));
    const cache = JSON.parse(readFileSync(join(dir, 'peak.json'), 'utf8'));
    const cached = Object.values(cache)[0] as number;
    assert.ok(Math.abs(cached * 1e9 - a.flops) <= 1e-9 * a.flops, `cache ${cached} GFLOP/s vs ${a.flops} FLOP/s`);
    assert.equal(peakFlops(be).flops, a.flops, 'the second call reads the cache');
    assert.ok(peakFlops(be, true).flops >= a.flops, 'a re-measurement never lowers it');
    assert.match(a.source, /native sgemm/);
  });
});

test('bf16 runs count against the bf16 peak: its own measurement and cache key (native), twice the nominal with AVX512_BF16 (ref)', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'llama-ts-peak-bf16-'));
  withEnv({ LLAMA_TS_PEAK_GFLOPS: undefined, LLAMA_TS_CACHE_DIR: dir }, () => {
    const be = native();
    const f32 = peakFlops(be);
    const bf16 = peakFlops(be, false, 'bf16');
    assert.match(bf16.source, /matmulBf16/);
    assert.ok(bf16.flops > 0 && f32.flops > 0);
    const cache = JSON.parse(readFileSync(join(dir, 'peak.json'), 'utf8')) as Record<string, number>;
    assert.equal(Object.keys(cache).length, 2);
    assert.ok(Object.keys(cache).some((k) => k.endsWith(`| bf16 ${be.addon.bf16Path()}`)));
    const ref = peakFlops(createRefBackend(), false, 'bf16');
    const twice = /\bavx512_bf16\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
    assert.equal(ref.flops, nominalPeakFlops() * (twice ? 2 : 1));
  });
});
