import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from './main.js';
import { parse, num, str } from './args.js';
import { createBackend } from '../kernels/index.js';
import { loadAnyModel, saveModelAs, parseFormat, formatFromOutputPath, FORMATS, type ModelFormat } from '../io/formats.js';
import { describeConfig } from '../model/config.js';
import { UserError } from '../util/errors.js';
import { modelMemoryCheck } from './infer-common.js';

const HELP = `usage: llama-ts convert --from PATH --to PATH [--from-format F] [--to-format F] [--type T] [--shard-mb N]

formats:  ${FORMATS.join(', ')}  (ckpt: llama-ts checkpoint dir; hf: Hugging Face LlamaForCausalLM dir;
          gguf: llama.cpp file; llama2c: llama2.c v0 .bin, tokenizer.bin written beside it)
          --from-format is inferred from the input; --to-format from the output's extension (.gguf, .bin) or an
          existing output directory, otherwise required.
--type    gguf: f32 (default), f16, q8_0, bf16;  hf: f32 (default), f16, bf16
--shard-mb  hf: split the safetensors into shards of at most N MiB (with model.safetensors.index.json)
--force     convert even when the memory estimate exceeds the available memory (LLAMA_TS_MEMORY_LIMIT, else MemAvailable)`;

function outputFormat(path: string, flag: string | undefined): ModelFormat {
  if (flag) return parseFormat(flag, 'to-format');
  const f = formatFromOutputPath(path);
  if (f) return f;
  if (existsSync(path) && statSync(path).isDirectory()) {
    if (existsSync(join(path, 'state.json'))) return 'ckpt';
    if (existsSync(join(path, 'config.json'))) return 'hf';
  }
  throw new UserError(`cannot infer the output format of '${path}': give --to-format ${FORMATS.join('|')}`);
}

export const command: Command = {
  async run(argv) {
    const { values } = parse(argv, {
      from: { type: 'string' }, to: { type: 'string' }, 'from-format': { type: 'string' }, 'to-format': { type: 'string' },
      type: { type: 'string' }, 'shard-mb': { type: 'string' }, name: { type: 'string' }, force: { type: 'boolean' },
    });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const from = str(values.from);
    const to = str(values.to);
    if (!from || !to) throw new UserError('--from PATH and --to PATH are required');
    const ff = str(values['from-format']);
    const tf = outputFormat(to, str(values['to-format']));
    const type = str(values.type)?.toLowerCase();
    if (type !== undefined) {
      const ok = tf === 'gguf' ? ['f32', 'f16', 'q8_0', 'bf16'] : tf === 'hf' ? ['f32', 'f16', 'bf16'] : ['f32'];
      if (!ok.includes(type)) throw new UserError(`--type ${type} is not available for ${tf} (choose ${ok.join(', ')})`);
    }
    const shardMb = num(values['shard-mb'], 'shard-mb');
    if (shardMb !== undefined && !(shardMb > 0)) throw new UserError('--shard-mb must be > 0');
    const loaded = loadAnyModel(from, createBackend('ref'), ff ? parseFormat(ff, 'from-format') : undefined, modelMemoryCheck(values, 4, 0));
    if (!loaded.vocab) process.stderr.write(`llama-ts: warning: ${loaded.description} has no tokenizer llama-ts can read; writing the byte tokenizer's vocabulary\n`);
    const written = saveModelAs(tf, to, loaded.model, loaded.vocab, {
      ggufType: tf === 'gguf' ? (type as 'f32' | 'f16' | 'q8_0' | 'bf16' | undefined) : undefined,
      hfDtype: tf === 'hf' && type ? (type.toUpperCase() as 'F32' | 'F16' | 'BF16') : undefined,
      hfMaxShardBytes: shardMb ? Math.floor(shardMb * 2 ** 20) : undefined,
      name: str(values.name),
    });
    console.log(`${loaded.format} '${from}' → ${tf} ${written.map((w) => `'${w}'`).join(' + ')} (${describeConfig(loaded.model.config)})`);
    return 0;
  },
};
