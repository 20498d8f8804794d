import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from './main.js';
import { parse, num, str } from './args.js';
import { createBackend } from '../kernels/index.js';
import { loadAnyModel, saveModelAs, parseFormat, formatFromOutputPath, FORMATS, type ModelFormat } from '../io/formats.js';
import { describeConfig } from '../model/config.js';
import { UserError } from '../util/errors.js';
import { modelMemoryCheck } from './infer-common.js';
import { adapterBasePath, exportPeft, readPeftAdapter, PEFT_CONFIG, PEFT_WEIGHTS } from '../io/lora.js';
import { GGUF_EXPORT_TYPES, type GgufExportType } from '../io/gguf-llama.js';

const HELP = `usage: llama-ts convert --from PATH --to PATH [--from-format F] [--to-format F] [--type T] [--shard-mb N] [--merge-lora DIR]
       llama-ts convert --from LORA_RUN --to DIR --to-format peft

formats:  ${FORMATS.join(', ')}  (ckpt: llama-ts checkpoint dir; hf: Hugging Face LlamaForCausalLM dir;
          gguf: llama.cpp file; llama2c: llama2.c v0 .bin, tokenizer.bin written beside it)
          --from-format is inferred from the input; --to-format from the output's extension (.gguf, .bin) or an
          existing output directory, otherwise required.
--type    gguf: f32 (default), f16, bf16, q8_0, q4_0, q4_k (4-bit: output head Q6_K or Q8_0, see docs/INFERENCE.md);
          hf: f32 (default), f16, bf16
--shard-mb  hf: split the safetensors into shards of at most N MiB (with model.safetensors.index.json)
--merge-lora DIR  fold a LoRA adapter (PEFT directory or 'train --lora' run) into the weights: W + (α/r)·B·A
                  (without --from: the base the adapter records, when that path exists)
--to-format peft  write a 'train --lora' run's adapter alone as adapter_model.safetensors + adapter_config.json
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
      type: { type: 'string' }, 'shard-mb': { type: 'string' }, name: { type: 'string' }, force: { type: 'boolean' }, 'merge-lora': { type: 'string' },
    });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const merge = str(values['merge-lora']);
    const from = str(values.from) ?? (merge !== undefined && str(values['to-format']) !== 'peft' ? adapterBasePath(merge) ?? undefined : undefined);
    const to = str(values.to);
    if (!from || !to) throw new UserError('--from PATH and --to PATH are required');
    if (str(values['to-format']) === 'peft') {
      if (values['merge-lora'] !== undefined) throw new UserError('--to-format peft writes an adapter; --merge-lora writes a model: choose one');
      const dir = exportPeft(from, to);
      console.log(`LoRA adapter '${dir}' → peft '${to}' (${PEFT_WEIGHTS} + ${PEFT_CONFIG})`);
      return 0;
    }
    const ff = str(values['from-format']);
    const tf = outputFormat(to, str(values['to-format']));
    const type = str(values.type)?.toLowerCase();
    if (type !== undefined) {
      const ok: string[] = tf === 'gguf' ? GGUF_EXPORT_TYPES : tf === 'hf' ? ['f32', 'f16', 'bf16'] : ['f32'];
      if (!ok.includes(type)) throw new UserError(`--type ${type} is not available for ${tf} (choose ${ok.join(', ')})`);
    }
    const shardMb = num(values['shard-mb'], 'shard-mb');
    if (shardMb !== undefined && !(shardMb > 0)) throw new UserError('--shard-mb must be > 0');
    const loaded = loadAnyModel(from, createBackend('ref'), ff ? parseFormat(ff, 'from-format') : undefined, modelMemoryCheck(values, 4, 0), { dequantize: true });
    if (merge !== undefined) readPeftAdapter(merge, loaded.model.config, loaded.model.backend).adapter.mergeInto(loaded.model);
    if (!loaded.vocab) process.stderr.write(`llama-ts: warning: ${loaded.description} has no tokenizer llama-ts can read; writing the byte tokenizer's vocabulary\n`);
    const written = saveModelAs(tf, to, loaded.model, loaded.vocab, {
      ggufType: tf === 'gguf' ? (type as GgufExportType | undefined) : undefined,
      hfDtype: tf === 'hf' && type ? (type.toUpperCase() as 'F32' | 'F16' | 'BF16') : undefined,
      hfMaxShardBytes: shardMb ? Math.floor(shardMb * 2 ** 20) : undefined,
      name: str(values.name),
    });
    console.log(`${loaded.format} '${from}'${merge !== undefined ? ` + LoRA '${merge}'` : ''} → ${tf} ${written.map((w) => `'${w}'`).join(' + ')} (${describeConfig(loaded.model.config)})`);
    return 0;
  },
};
