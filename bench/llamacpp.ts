/**
 * Loads node-llama-cpp (llama.cpp) from the optional peer folder tools/llama-cpp-peer, installed with
 * `npm ci --omit=optional` there (.ci/run does it). Returns null when that folder is not installed, so tests
 * and benchmarks can skip with a clear message; users' `npm install` never pulls llama.cpp in.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const PEER_DIR = fileURLToPath(new URL('../../tools/llama-cpp-peer/', import.meta.url));
const ENTRY = `${PEER_DIR}node_modules/node-llama-cpp/dist/index.js`;

// The module's types are not visible to tsc from here; the few calls we make are typed loosely.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type NodeLlamaCpp = any;

export const PEER_MISSING = `llama.cpp peer not installed: run 'npm ci --omit=optional' in tools/llama-cpp-peer`;

export async function loadLlamaCpp(): Promise<NodeLlamaCpp | null> {
  if (!existsSync(ENTRY)) return null;
  return import(pathToFileURL(ENTRY).href);
}

/** A CPU-only llama.cpp runtime (never builds or downloads anything). */
export async function cpuLlama(m: NodeLlamaCpp): Promise<NodeLlamaCpp> {
  return m.getLlama({ gpu: false, build: 'never', logLevel: (process.env.LLAMA_CPP_LOG ?? 'error'), progressLogs: false });
}
