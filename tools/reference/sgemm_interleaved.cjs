/* Interleaved SGEMM timing of several addons with the llama-ts matmul entry points (two llama-ts builds, or one and
 * tools/reference/openblas_napi.c), for A/B comparisons on a machine whose speed drifts: the variants take turns in
 * blocks of 3 timed calls (after one untimed call and a 30 ms pause, so that the other variant's threads stop
 * spinning), and each reports the median over all its blocks.
 *   node tools/reference/sgemm_interleaved.cjs A.node,B.node[,C.node] ["M,K,N;M,K,N..."]   (REPS=21, LAYOUTS=fwd,dx,dw)
 * OpenBLAS keeps its threads spinning long after a call (they would slow the next variant): run with
 * OPENBLAS_THREAD_TIMEOUT=4 (shortest), OPENBLAS_NUM_THREADS = the llama-ts pool size, OPENBLAS_CORETYPE as the CPU
 * supports. Prints GFLOP/s per variant and the ratio of each to the last one. */
const paths = process.argv[2].split(',');
const mods = paths.map((p) => require(require('node:path').resolve(p)));
const REPS = Number(process.env.REPS || 21);
const shapes = (process.argv[3] || '2048,288,288;2048,288,768;2048,768,288;262,288,32000;214,288,32000;2048,512,512;2048,512,1376;2048,1376,512;262,512,32000;214,512,32000;2048,288,4096')
  .split(';').map((s) => s.split(',').map(Number));
const rnd = (n) => Float32Array.from({ length: n }, () => Math.random() - 0.5);
const layouts = (process.env.LAYOUTS || 'fwd,dx,dw').split(',');
const sab = new Int32Array(new SharedArrayBuffer(4));
const rows = [];
for (const [M, K, N] of shapes) {
  const x = rnd(M * K), w = rnd(N * K), dy = rnd(M * N), out = new Float32Array(M * N), dx = new Float32Array(M * K), dw = new Float32Array(N * K);
  const flop = (2 * M * N * K) / 1e6;
  let line = `${M}x${K}x${N}`.padEnd(15);
  const row = { M, K, N };
  for (const l of layouts) {
    const fns = mods.map((m) => (l === 'fwd' ? () => m.matmul(out, x, w, M, K, N, false)
      : l === 'dx' ? () => m.matmulBackwardInput(dx, dy, w, M, K, N, false) : () => m.matmulBackwardWeight(dw, dy, x, M, K, N)));
    const ts = fns.map(() => []);
    for (let r = 0; r < REPS; r += 3) {
      fns.forEach((fn, i) => {
        Atomics.wait(sab, 0, 0, 30);
        fn();
        for (let q = 0; q < 3; q++) {
          const t = performance.now();
          fn();
          ts[i].push(performance.now() - t);
        }
      });
    }
    const g = ts.map((a) => { a.sort((p, q) => p - q); const n = a.length; return flop / (n % 2 ? a[(n - 1) / 2] : (a[n / 2 - 1] + a[n / 2]) / 2); });
    row[l] = g.map((v) => +v.toFixed(1));
    line += ` ${l}: ` + g.map((v) => v.toFixed(0).padStart(4)).join('/') + ' (' + g.slice(0, -1).map((v) => (v / g[g.length - 1]).toFixed(2)).join(', ') + ')';
  }
  rows.push(row);
  console.log(line);
}
if (process.env.JSON_OUT) require('node:fs').writeFileSync(process.env.JSON_OUT, JSON.stringify({ variants: paths, reps: REPS, gflops: rows }, null, 1));
