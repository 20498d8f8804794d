import type { Command } from './main.js';
import { parse, int } from './args.js';
import { loadConfigArg, configOptions } from './common.js';
import { openCheckpoint } from '../io/checkpoint.js';
import { str } from './args.js';
import { paramCount, trainFlopsPerToken, ffnHiddenDim, headDim, type LlamaConfig } from '../model/config.js';
import { activationFloats } from '../model/llama.js';
import { describeRecipe, getRecipe } from '../model/recipe.js';

export function memoryEstimate(c: LlamaConfig, batch: number, seq: number, bytesPerFloat = 4) {
  const n = paramCount(c);
  // what Llama allocates for the backward at this shape (saved activations, backward scratch, loss chunk)
  const activations = activationFloats(c, batch, seq) * bytesPerFloat;
  return {
    weights: n * bytesPerFloat,
    gradients: n * bytesPerFloat,
    adamMoments: 2 * n * bytesPerFloat,
    activations,
    total: 4 * n * bytesPerFloat + activations,
  };
}

function gib(b: number): string {
  return b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`;
}

export const command: Command = {
  async run(argv) {
    const { values } = parse(argv, { ...configOptions, checkpoint: { type: 'string' }, batch: { type: 'string' }, json: { type: 'boolean' } });
    if (values.help) {
      console.log('usage: llama-ts info (--preset NAME | --config FILE | --checkpoint DIR) [--seq T] [--batch B] [--json]');
      console.log("A preset's line 'recipe' is its training recipe: what 'llama-ts train --preset NAME' uses unless a flag says otherwise.");
      return 0;
    }
    const ckpt = str(values.checkpoint);
    const config = ckpt ? openCheckpoint(ckpt).state.config : loadConfigArg(values);
    const seq = int(values.seq, 'seq', config.maxSeqLen, 1);
    const batch = int(values.batch, 'batch', 1, 1);
    const mem = memoryEstimate(config, batch, seq);
    const recipe = ckpt ? undefined : getRecipe(str(values.preset) ?? '');
    const info = {
      config,
      ffnHiddenDim: ffnHiddenDim(config),
      headDim: headDim(config),
      params: paramCount(config),
      trainFlopsPerToken: trainFlopsPerToken(config, seq),
      seq,
      batch,
      memoryBytesFp32: mem,
      ...(recipe ? { recipe } : {}),
    };
    if (values.json) {
      console.log(JSON.stringify(info));
      return 0;
    }
    console.log(`config      ${JSON.stringify(config)}`);
    console.log(`ffn hidden  ${info.ffnHiddenDim}   head dim ${info.headDim}`);
    console.log(`parameters  ${info.params.toLocaleString('en-US')}`);
    if (recipe) console.log(`recipe      ${describeRecipe(recipe)}  (${recipe.source})`);
    console.log(`train FLOPs/token (seq ${seq})  ${info.trainFlopsPerToken.toExponential(3)}`);
    console.log(
      `memory (fp32, batch ${batch}, seq ${seq}): weights ${gib(mem.weights)}, grads ${gib(mem.gradients)}, ` +
        `Adam ${gib(mem.adamMoments)}, activations ${gib(mem.activations)}, total ${gib(mem.total)}`,
    );
    return 0;
  },
};
