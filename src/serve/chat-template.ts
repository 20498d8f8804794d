/**
 * Chat templates: how a list of messages becomes one prompt. A GGUF file may carry its template as Jinja source
 * (`tokenizer.chat_template`); we do not run Jinja, we recognise the common templates by what their source contains
 * (as llama.cpp's `llm_chat_detect_template` does) and render them here:
 *
 *   chatml  `<|im_start|>`            <|im_start|>system\n…<|im_end|>\n<|im_start|>user\n…<|im_end|>\n<|im_start|>assistant\n
 *   llama3  `<|start_header_id|>`     <|start_header_id|>user<|end_header_id|>\n\n…<|eot_id|>…<|start_header_id|>assistant<|end_header_id|>\n\n
 *   llama2  `[INST]`                  <s>[INST] <<SYS>>\n…\n<</SYS>>\n\n… [/INST] answer </s><s>[INST] … [/INST]
 *   zephyr  `<|user|>`                <|system|>\n…</s>\n<|user|>\n…</s>\n<|assistant|>\n
 *   gemma   `<start_of_turn>`         <start_of_turn>user\n…<end_of_turn>\n<start_of_turn>model\n (system text joins the first user turn)
 *
 * A file without a template, or with one we do not recognise, gets DEFAULT_TEMPLATE (chatml, as llama.cpp's server).
 * Markers that are pieces of the vocabulary (`<|im_start|>`, `<s>` …) become their token ids; others are encoded
 * as text. The prompt always starts with BOS (as `generate` and `chat` do). Each template's end-of-turn marker
 * ends generation: as a token id when it is a vocabulary piece, else as a stop string.
 */
import type { Tokenizer } from '../tokenizer/types.js';
import type { TokenizerVocab } from '../tokenizer/vocab.js';

export type TemplateName = 'chatml' | 'llama3' | 'llama2' | 'zephyr' | 'gemma';
export const TEMPLATE_NAMES: TemplateName[] = ['chatml', 'llama3', 'llama2', 'zephyr', 'gemma'];
export const DEFAULT_TEMPLATE: TemplateName = 'chatml';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** A rendered prompt: text, or a marker `{ special }` that is one token when the vocabulary has that piece. */
export type PromptPart = string | { special: string };

/** The template a Jinja source is recognisably an instance of, or null. Order matters: llama3 sources mention no [INST]. */
export function detectTemplate(source: string): TemplateName | null {
  if (source.includes('<|im_start|>')) return 'chatml';
  if (source.includes('<|start_header_id|>')) return 'llama3';
  if (source.includes('<start_of_turn>')) return 'gemma';
  if (source.includes('<|user|>')) return 'zephyr';
  if (source.includes('[INST]')) return 'llama2';
  return null;
}

/** The marker that ends an assistant turn. */
export function endOfTurn(name: TemplateName): string {
  switch (name) {
    case 'chatml': return '<|im_end|>';
    case 'llama3': return '<|eot_id|>';
    case 'gemma': return '<end_of_turn>';
    case 'llama2':
    case 'zephyr': return '</s>';
  }
}

const sp = (special: string): PromptPart => ({ special });

/** The parts of the prompt that asks the model for the next assistant turn. */
export function renderChat(name: TemplateName, messages: ChatMessage[]): PromptPart[] {
  const out: PromptPart[] = [];
  switch (name) {
    case 'chatml':
      for (const m of messages) out.push(sp('<|im_start|>'), `${m.role}\n${m.content}`, sp('<|im_end|>'), '\n');
      out.push(sp('<|im_start|>'), 'assistant\n');
      return out;
    case 'llama3':
      for (const m of messages) out.push(sp('<|start_header_id|>'), m.role, sp('<|end_header_id|>'), `\n\n${m.content.trim()}`, sp('<|eot_id|>'));
      out.push(sp('<|start_header_id|>'), 'assistant', sp('<|end_header_id|>'), '\n\n');
      return out;
    case 'zephyr':
      for (const m of messages) out.push(`<|${m.role}|>\n${m.content}`, sp('</s>'), '\n');
      out.push('<|assistant|>\n');
      return out;
    case 'gemma': {
      let system = '';
      for (const m of messages) {
        if (m.role === 'system') {
          system += `${m.content}\n\n`;
          continue;
        }
        out.push(sp('<start_of_turn>'), `${m.role === 'assistant' ? 'model' : 'user'}\n${system}${m.content.trim()}`, sp('<end_of_turn>'), '\n');
        system = '';
      }
      out.push(sp('<start_of_turn>'), `model\n${system}`);
      return out;
    }
    case 'llama2': {
      // Meta's chat format: a system message joins the first user turn inside <<SYS>>; each exchange is one <s>…</s>
      let system = '';
      let open = false; // a [INST] … [/INST] awaiting its answer
      for (const m of messages) {
        if (m.role === 'system') {
          system += m.content;
        } else if (m.role === 'user') {
          const sys = system ? `<<SYS>>\n${system}\n<</SYS>>\n\n` : '';
          out.push(sp('<s>'), `[INST] ${sys}${m.content.trim()} [/INST]`);
          system = '';
          open = true;
        } else {
          if (!open) out.push(sp('<s>'));
          out.push(` ${m.content.trim()} `, sp('</s>'));
          open = false;
        }
      }
      return out;
    }
  }
}

/** The id of a vocabulary piece spelled exactly `piece` (BOS and EOS by their ids), or null. */
export function specialId(piece: string, tokenizer: Tokenizer, vocab: TokenizerVocab | null): number | null {
  if (piece === '<s>') return tokenizer.bosId;
  if (piece === '</s>') return tokenizer.eosId;
  if (!vocab) return null;
  const i = vocab.pieces.indexOf(piece);
  return i >= 0 ? i : null;
}

/** Token ids of a rendered prompt, starting with BOS (once). */
export function encodeChat(parts: PromptPart[], tokenizer: Tokenizer, vocab: TokenizerVocab | null): number[] {
  const ids = [tokenizer.bosId];
  for (const p of parts) {
    if (typeof p === 'string') {
      if (p.length) ids.push(...tokenizer.encode(p));
      continue;
    }
    const id = specialId(p.special, tokenizer, vocab);
    if (id === tokenizer.bosId && ids.length === 1) continue; // the template's own leading <s>
    if (id !== null) ids.push(id);
    else ids.push(...tokenizer.encode(p.special));
  }
  return ids;
}

/** What ends an assistant turn: a token id when the marker is a vocabulary piece, else a stop string. */
export function turnStop(name: TemplateName, tokenizer: Tokenizer, vocab: TokenizerVocab | null): { tokens: number[]; strings: string[] } {
  const end = endOfTurn(name);
  const id = specialId(end, tokenizer, vocab);
  return id !== null ? { tokens: [id], strings: [] } : { tokens: [], strings: [end] };
}
