import { basename } from 'node:path';
import type { Command } from './main.js';
import { parse, int, num, str } from './args.js';
import { modelOptions, loadModelArg, MODEL_HELP, kvCacheOptions, kvCacheArg, KV_CACHE_HELP } from './infer-common.js';
import { Decoder } from '../inference/generate.js';
import { LlamaServer } from '../serve/server.js';
import { DEFAULT_TEMPLATE, TEMPLATE_NAMES, detectTemplate, type TemplateName } from '../serve/chat-template.js';
import { UserError } from '../util/errors.js';

const HELP = `usage: llama-ts serve --model PATH [--host 127.0.0.1] [--port 8080] [options]

An OpenAI-compatible HTTP server: POST /v1/completions and /v1/chat/completions (stream: true for server-sent
events), GET /v1/models and /health. Concurrent requests are decoded together in one batch (continuous batching).
${MODEL_HELP}
${KV_CACHE_HELP}
server:   --host ADDR (127.0.0.1)  --port P (8080; 0 = any free port, printed at start)
          --model-name ID    the id clients send as 'model' (default: the model file's name)
          --parallel N (8)   sequences decoded together (KV caches)
          --queue N (64)     sequences that may wait for a slot; beyond that requests get 429
          --prefill-chunk N (128)  prompt tokens prefilled per decode step (bounds the pause a new prompt causes)
          --chat-template ${TEMPLATE_NAMES.join('|')}  (default: recognised from the model file's
                             tokenizer.chat_template, else ${DEFAULT_TEMPLATE})
          --shutdown-grace S (10)  on SIGTERM/SIGINT, seconds running requests may finish before they are cancelled
See docs/INFERENCE.md, "Server".`;

export const command: Command = {
  async run(argv) {
    const { values } = parse(argv, {
      ...modelOptions, ...kvCacheOptions, host: { type: 'string' }, port: { type: 'string' }, 'model-name': { type: 'string' }, parallel: { type: 'string' },
      queue: { type: 'string' }, 'prefill-chunk': { type: 'string' }, 'chat-template': { type: 'string' }, 'shutdown-grace': { type: 'string' },
    });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const host = str(values.host) ?? '127.0.0.1';
    const port = int(values.port, 'port', 8080, 0);
    if (port > 65535) throw new UserError(`--port must be at most 65535, got ${port}`);
    const slots = int(values.parallel, 'parallel', 8, 1);
    const queue = int(values.queue, 'queue', 64, 0);
    const prefillChunk = int(values['prefill-chunk'], 'prefill-chunk', 128, 1);
    const grace = num(values['shutdown-grace'], 'shutdown-grace', 10);
    if (!(grace >= 0)) throw new UserError('--shutdown-grace must be >= 0 seconds');
    const forced = str(values['chat-template']);
    if (forced !== undefined && !(TEMPLATE_NAMES as string[]).includes(forced)) {
      throw new UserError(`--chat-template must be one of ${TEMPLATE_NAMES.join(', ')}, got '${forced}'`);
    }
    const kvCache = kvCacheArg(values);
    const loaded = loadModelArg(values, slots);
    let template: TemplateName = DEFAULT_TEMPLATE;
    let templateFrom = 'default';
    if (forced) {
      template = forced as TemplateName;
      templateFrom = '--chat-template';
    } else if (loaded.chatTemplate !== undefined) {
      const found = detectTemplate(loaded.chatTemplate);
      if (found) {
        template = found;
        templateFrom = "the model's tokenizer.chat_template";
      } else {
        templateFrom = `default: the model's tokenizer.chat_template is not one llama-ts recognises`;
      }
    }
    const id = str(values['model-name']) ?? basename(str(values.model) as string);
    const server = new LlamaServer({
      decoder: new Decoder(loaded.model, { kvCache }), slots, queue, prefillChunk,
      model: { id, contextLength: loaded.model.config.maxSeqLen, tokenizer: loaded.tokenizer, vocab: loaded.vocab, template },
    });
    let addr;
    try {
      addr = await server.listen(port, host);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new UserError(`cannot listen on ${host}:${port}: ${err.code ?? err.message}`);
    }
    const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    console.log(`llama-ts serve: listening on http://${shown}:${addr.port} (model '${id}', context ${loaded.model.config.maxSeqLen}, ${slots} slots, queue ${queue}, chat template ${template} (${templateFrom}))`);
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        process.off('SIGTERM', onTerm);
        process.off('SIGINT', onInt);
        const s = server.engine.stats();
        console.log(`llama-ts serve: ${signal}: shutting down (${s.busy} running, ${s.waiting} waiting; up to ${grace} s to finish)`);
        void server.shutdown(grace * 1000).then((r) => {
          console.log(`llama-ts serve: stopped (${r.finished ? 'every request finished' : 'unfinished requests were cancelled'})`);
          resolve();
        });
      };
      const onTerm = () => stop('SIGTERM');
      const onInt = () => stop('SIGINT');
      process.on('SIGTERM', onTerm);
      process.on('SIGINT', onInt);
    });
    return 0;
  },
};
