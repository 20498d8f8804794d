/** The llama-ts command line: a table of subcommands, each a thin module over the library. */
import { UserError } from '../util/errors.js';

export interface Command {
  summary: string;
  run(argv: string[]): Promise<number>;
}

const COMMANDS: Record<string, () => Promise<Command>> = {
  demo: async () => (await import('./demo.js')).command,
  train: async () => (await import('./train.js')).command,
  sample: async () => (await import('./sample.js')).command,
  info: async () => (await import('./info.js')).command,
  plan: async () => (await import('./plan.js')).command,
  tokenizer: async () => (await import('./tokenizer.js')).command,
  generate: async () => (await import('./generate.js')).command,
  chat: async () => (await import('./chat.js')).command,
  convert: async () => (await import('./convert.js')).command,
  score: async () => (await import('./score.js')).command,
  data: async () => (await import('./data.js')).command,
  bench: async () => (await import('./bench.js')).command,
  dashboard: async () => (await import('./dashboard.js')).command,
  plot: async () => (await import('./plot.js')).command,
};

async function usage(): Promise<string> {
  const lines = ['usage: llama-ts <command> [options]', '', 'commands:'];
  for (const [name, load] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)} ${(await load()).summary}`);
  lines.push('', "run 'llama-ts <command> --help' for a command's options");
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (!name || name === '--help' || name === '-h' || name === 'help') {
      console.log(await usage());
      return name ? 0 : 1;
    }
    const load = COMMANDS[name];
    if (!load) throw new UserError(`unknown command '${name}' (try 'llama-ts --help')`);
    return await (await load()).run(rest);
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
