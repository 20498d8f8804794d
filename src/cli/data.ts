/**
 * `llama-ts data prepare|stats|plan`: thin wrappers over src/data (see docs/DATA.md).
 */
import type { Command } from './main.js';
import { parse, int, num, str } from './args.js';
import { formatTable, human, pct } from './table.js';
import { UserError } from '../util/errors.js';
import { loadRecipe, parseCount, planMixture, type Recipe } from '../data/recipe.js';
import { prepareData } from '../data/prepare.js';
import { formatReport } from '../data/clean.js';
import { sourceBytes } from '../data/ingest.js';
import { isPreparedDir, readManifest, manifestShares } from '../data/loader.js';
import { readShardHeader } from '../data/shard.js';
import { join } from 'node:path';

const USAGE = `usage: llama-ts data <prepare|stats|plan> ...

  data prepare --recipe R.json --out DIR [--tokenizer T.model] [--workers N] [--on-bad-record fail|skip] [--force] [--quiet]
      read, clean, deduplicate and tokenize the recipe's sources into token shards + manifest in DIR
      (no --tokenizer: the byte tokenizer; written to a staging directory and renamed into place when complete)
  data stats DIR [--json]
      what a prepared directory holds: tokens, documents, shards, cleaning report per source (checks every shard header)
  data plan R.json [--data DIR] [--total TOKENS] [--bytes-per-token X] [--json]
      per source: tokens, sampling share, tokens drawn and epochs implied by the budget; warns above the
      recipe's repeat_warning. Tokens come from DIR's manifest, else the recipe's 'tokens', else size on disk / X (default 4)

See docs/DATA.md.`;

async function prepare(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    recipe: { type: 'string' }, out: { type: 'string' }, tokenizer: { type: 'string' }, workers: { type: 'string' },
    'on-bad-record': { type: 'string' }, force: { type: 'boolean' }, quiet: { type: 'boolean' },
  });
  if (values.help) return (console.log(USAGE), 0);
  const recipePath = str(values.recipe);
  const out = str(values.out);
  if (!recipePath) throw new UserError('data prepare needs --recipe R.json');
  if (!out) throw new UserError('data prepare needs --out DIR');
  const policy = str(values['on-bad-record']);
  if (policy !== undefined && policy !== 'fail' && policy !== 'skip') throw new UserError(`--on-bad-record must be 'fail' or 'skip', got '${policy}'`);
  const recipe = loadRecipe(recipePath, policy as 'fail' | 'skip' | undefined);
  const r = await prepareData({
    recipe, out, tokenizerPath: str(values.tokenizer) ?? null, workers: int(values.workers, 'workers', undefined, 0),
    force: Boolean(values.force), quiet: Boolean(values.quiet),
  });
  if (!values.quiet) {
    for (const s of r.manifest.sources) {
      for (const l of formatReport(s.name, s.clean)) console.error(l);
      const bad = Object.entries(s.ingest.badRecords);
      if (bad.length) console.error(`  skipped records   ${bad.map(([k, v]) => `${v} ${k}`).join(', ')}`);
    }
  }
  const total = r.manifest.sources.reduce((a, s) => a + s.train.tokens, 0);
  console.log(`prepared ${out}: ${total.toLocaleString('en-US')} training tokens from ${r.manifest.sources.length} sources in ${r.seconds.toFixed(1)}s ` +
    `(${(r.bytesIn / 1e6 / r.seconds).toFixed(2)} MB/s read, ${r.workers} tokenizer workers)`);
  return 0;
}

function stats(argv: string[]): number {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' } }, true);
  if (values.help) return (console.log(USAGE), 0);
  const dir = positionals[0];
  if (!dir || positionals.length > 1) throw new UserError('usage: llama-ts data stats DIR');
  if (!isPreparedDir(dir)) throw new UserError(`'${dir}' is not a prepared data directory (no manifest.json; run 'llama-ts data prepare')`);
  const m = readManifest(dir);
  // every shard header is checked against the manifest
  for (const s of m.sources) {
    for (const split of ['train', 'heldOut'] as const) {
      for (const sh of s[split].shards) {
        const h = readShardHeader(join(dir, s.name, sh.file));
        if (h.tokens !== sh.tokens || h.docs !== sh.docs) throw new UserError(`shard '${join(dir, s.name, sh.file)}' holds ${h.tokens} tokens / ${h.docs} docs, the manifest says ${sh.tokens} / ${sh.docs}`);
      }
    }
  }
  const shares = manifestShares(m);
  if (values.json) {
    console.log(JSON.stringify({ ...m, shares: Object.fromEntries(shares) }, null, 1));
    return 0;
  }
  const tokTotal = m.sources.reduce((a, s) => a + s.train.tokens, 0);
  console.log(`${dir}: recipe '${m.recipe.name}', tokenizer ${m.tokenizer.kind}${m.tokenizer.path ? ` (${m.tokenizer.path})` : ''}, vocab ${m.tokenizer.vocabSize}, ${m.dtype} tokens, created ${m.createdAt}`);
  console.log(formatTable(
    ['source', 'train tokens', 'docs', 'shards', 'held-out tokens', 'docs', 'share', 'read', 'kept chars'],
    m.sources.map((s) => [
      s.name, s.train.tokens.toLocaleString('en-US'), s.train.docs.toLocaleString('en-US'), String(s.train.shards.length),
      s.heldOut.tokens.toLocaleString('en-US'), s.heldOut.docs.toLocaleString('en-US'), pct(shares.get(s.name) ?? 0),
      `${(s.ingest.bytes / 1e6).toFixed(2)} MB`, pct(s.clean.output.chars / Math.max(1, s.clean.input.chars)),
    ]),
  ));
  console.log(`total: ${tokTotal.toLocaleString('en-US')} training tokens`);
  for (const s of m.sources) {
    console.log('');
    for (const l of formatReport(s.name, s.clean)) console.log(l);
    const bad = Object.entries(s.ingest.badRecords);
    if (bad.length) console.log(`  skipped records   ${bad.map(([k, v]) => `${v} ${k}`).join(', ')}`);
  }
  return 0;
}

function plan(argv: string[]): number {
  const { values, positionals } = parse(argv, {
    data: { type: 'string' }, total: { type: 'string' }, 'bytes-per-token': { type: 'string' }, json: { type: 'boolean' },
  }, true);
  if (values.help) return (console.log(USAGE), 0);
  const path = positionals[0];
  if (!path || positionals.length > 1) throw new UserError('usage: llama-ts data plan R.json [--data DIR]');
  const recipe: Recipe = loadRecipe(path);
  const dataDir = str(values.data);
  const manifest = dataDir ? (isPreparedDir(dataDir) ? readManifest(dataDir) : (() => { throw new UserError(`'${dataDir}' is not a prepared data directory`); })()) : null;
  const defaultBpt = num(values['bytes-per-token'], 'bytes-per-token', 4);
  if (!(defaultBpt > 0)) throw new UserError('--bytes-per-token must be > 0');
  const total = values.total !== undefined ? parseCount(str(values.total), '--total') : recipe.totalTokens;
  if (!(total > 0)) throw new UserError('--total must be > 0');
  const basis: string[] = [];
  const sources = recipe.sources.map((s) => {
    let tokens: number;
    const fromManifest = manifest?.sources.find((x) => x.name === s.name);
    if (manifest && !fromManifest) throw new UserError(`source '${s.name}' is not in '${dataDir}' (prepared from another recipe?)`);
    if (fromManifest) {
      tokens = fromManifest.train.tokens;
      basis.push('prepared');
    } else if (s.tokens !== undefined) {
      tokens = s.tokens;
      basis.push('recipe');
    } else {
      const bpt = s.bytesPerToken ?? defaultBpt;
      tokens = sourceBytes(s) / bpt;
      basis.push(`~${human(sourceBytes(s))}B/${bpt}`);
    }
    return { name: s.name, weight: s.weight, epochs: s.epochs, tokens };
  });
  const p = planMixture(sources, total, recipe.repeatWarning);
  if (values.json) {
    console.log(JSON.stringify({ recipe: recipe.name, totalTokens: total, rows: p.rows.map((r, i) => ({ ...r, tokensFrom: basis[i] })), warnings: p.warnings }, null, 1));
  } else {
    console.log(`recipe '${recipe.name}': budget ${human(total)} tokens`);
    console.log(formatTable(
      ['source', 'tokens', 'from', 'weight', 'share', 'drawn', 'epochs'],
      p.rows.map((r, i) => [r.name, human(r.tokens), basis[i], r.weight !== undefined ? String(r.weight) : `${r.targetEpochs} ep`, pct(r.share), human(r.drawn), r.epochs.toFixed(2)]),
    ));
  }
  for (const w of p.warnings) console.error(`warning: ${w}`);
  return 0;
}

export const command: Command = {
  async run(argv) {
    const [sub, ...rest] = argv;
    if (!sub || sub === '--help' || sub === '-h') {
      console.log(USAGE);
      return sub ? 0 : 1;
    }
    if (sub === 'prepare') return prepare(rest);
    if (sub === 'stats') return stats(rest);
    if (sub === 'plan') return plan(rest);
    throw new UserError(`unknown data command '${sub}' (prepare, stats or plan)`);
  },
};
