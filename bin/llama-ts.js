#!/usr/bin/env node
// Runs the CLI bundled by `npm run build` (dist/cli/: a few modules per command instead of ~100, a faster start) when
// it is there: always in an installed package (under node_modules), in a checkout only while it is not older than
// the compiled sources (a later `tsc` alone leaves it stale: then dist/src runs). Else the compiled modules.
import { statSync } from 'node:fs';

const bundle = new URL('../dist/cli/main.js', import.meta.url);
const compiled = new URL('../dist/src/cli/main.js', import.meta.url);
const b = statSync(bundle, { throwIfNoEntry: false });
const c = b && !import.meta.url.includes('/node_modules/') ? statSync(compiled, { throwIfNoEntry: false }) : undefined;
const { main } = await import(b && (!c || b.mtimeMs >= c.mtimeMs) ? bundle.href : compiled.href);
main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
