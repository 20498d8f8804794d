/** The llama-ts command line: a table of subcommands, each a thin module over the library. */
import { UserError } from '../util/errors.js';

export interface Command {
  run(argv: string[]): Promise<number>;
}

/**
 * Each command's one-line summary (what `llama-ts --help` lists) and its module, imported only when the command runs:
 * `--help` and a command's start-up load nothing else (lazy start-up).
 */
const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  demo: { summary: 'train a small model on the bundled English mixture for a few minutes, then print samples', load: async () => (await import('./demo.js')).command },
  train: { summary: 'train a model (preset or config file) on text data, with checkpoints and --resume', load: async () => (await import('./train.js')).command },
  sample: { summary: "alias of 'generate --count N' with the older flags (--checkpoint DIR, --tokens N)", load: async () => (await import('./sample.js')).command },
  info: { summary: 'print a model configuration, parameter count, FLOPs per token and memory estimate', load: async () => (await import('./info.js')).command },
  plan: { summary: 'plan a run: compute-/inference-optimal model size, and a cluster simulator (memory, step time, MFU)', load: async () => (await import('./plan.js')).command },
  tokenizer: { summary: 'train, inspect and apply SentencePiece-compatible BPE tokenizers (.model files)', load: async () => (await import('./tokenizer.js')).command },
  generate: { summary: 'generate text with a KV cache from any model format (streaming, sampling, stop strings, batches, samples)', load: async () => (await import('./generate.js')).command },
  chat: { summary: 'interactive completion loop over standard input lines', load: async () => (await import('./chat.js')).command },
  convert: { summary: 'convert a model between llama-ts checkpoints, Hugging Face, GGUF and llama2.c', load: async () => (await import('./convert.js')).command },
  score: { summary: 'teacher-forced loss, perplexity and per-token log-probabilities of a sequence', load: async () => (await import('./score.js')).command },
  data: { summary: 'prepare public-data mixtures: ingest, clean, dedup, tokenize to shards; stats; plan epochs', load: async () => (await import('./data.js')).command },
  bench: { summary: 'measure training (bench train) or generation (bench generate) throughput as one JSON line', load: async () => (await import('./bench.js')).command },
  eval: { summary: 'evaluate a model on tasks: multiple choice, closed-book QA (exact match), perplexity', load: async () => (await import('./eval.js')).command },
  dashboard: { summary: 'serve a live web page of one or more training runs (charts, progress, samples)', load: async () => (await import('./dashboard.js')).command },
  plot: { summary: "write a run's charts (loss, lr, gradient norm, speed, phase times) to an SVG or PNG file", load: async () => (await import('./plot.js')).command },
  serve: { summary: 'OpenAI-compatible HTTP server (completions, chat, streaming) with continuous batching', load: async () => (await import('./serve.js')).command },
};

function usage(): string {
  const lines = ['usage: llama-ts <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)} ${c.summary}`);
  lines.push('', "run 'llama-ts <command> --help' for a command's options");
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (!name || name === '--help' || name === '-h' || name === 'help') {
      console.log(usage());
      return name ? 0 : 1;
    }
    const cmd = COMMANDS[name];
    if (!cmd) throw new UserError(`unknown command '${name}' (try 'llama-ts --help')`);
    return await (await cmd.load()).run(rest);
  } catch (e) {
    if (e instanceof UserError) {
      console.error(`llama-ts: error: ${e.message}`);
      return 2;
    }
    if (process.env.LLAMA_TS_DEBUG) throw e;
    const err = e as NodeJS.ErrnoException;
    if (err && typeof err.code === 'string' && err.syscall) {
      // File-system errors are user errors in a CLI (missing path, permission...).
      console.error(`llama-ts: error: ${err.message}`);
      return 2;
    }
    console.error(`llama-ts: internal error: ${err?.stack ?? String(e)}`);
    return 70;
  }
}
