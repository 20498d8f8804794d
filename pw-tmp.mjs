import { createNodeWasmBackend } from './dist/src/kernels/wasm-node.js';
import { TrainingSession } from './dist/src/browser/session.js';
import { readFileSync } from 'node:fs';
const be = createNodeWasmBackend();
const s = TrainingSession.fresh(be, readFileSync('dist-web/sample.txt', 'utf8'), 'sample');
for (let i = 0; i < 3; i++) { const r = s.trainOne(); console.log(r.step, r.loss, Math.round(r.tokens_per_s)); }
console.log('sampling'); console.log(await s.sample('The ', 80, 1));
const ids = s.heldOutIds(64); console.log(s.score(ids));
