/**
 * A model file's bytes, memory-mapped read-only when the native addon is there (native/mmap.cc), read otherwise.
 *
 * `openModelFile(path, { map: true })` maps the whole file once (mmap PROT_READ, MAP_PRIVATE) and hands out views of
 * it without copying: `bytes(offset, n)` a Uint8Array, `f32(offset, n)` a Float32Array when the offset is a multiple
 * of 4 (GGUF tensor data is aligned to 32, safetensors data follows an 8-byte-padded header, llama2.c weights start
 * after a 28-byte header), else a copy (`copied` says so). `whole` is the file as one Uint8Array (an external
 * ArrayBuffer over the mapping), for readers that keep tensors in their file layout. The views are read-only in
 * fact: the pages are mapped without write permission, so writing into one is a crash, not a change to the file —
 * callers hand them only to code that reads weights (the inference path; training copies into its own buffers).
 *
 * Without the addon (LLAMA_TS_NO_NATIVE=1, a failed build) or with `map: false` the same interface reads: every
 * `bytes`/`f32` call returns a fresh copy read from the file (the plain read path).
 *
 * Sizes are validated before mapping: `expectSize` (what the caller's header check found) must equal the size the
 * mapping is made with, and the readers check every tensor's extent against it first. A file truncated while
 * mapped does not crash the process: native/mmap.cc turns the bus error into zero pages and counts it, and
 * `check()` (called by the decoder between steps) then throws a one-line error. Contents written into the file in
 * place while mapped show through (a shared page cache), as they do for llama.cpp and llama2.c; llama-ts's own
 * writers replace files by rename, which leaves the mapped inode as it was.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { loadAddon, type LoadedAddon } from './addon.js';
import { UserError } from './errors.js';
import { availableMemory } from './memory.js';
import { firstNonFiniteJs } from './finite.js';

/** The mapping functions of the native addon (native/mmap.cc), bound beside its op table. */
interface MmapAddon {
  mapOpen(path: string, populate: boolean): unknown;
  mapSize(h: unknown): number;
  mapRange(h: unknown, offset: number, length: number): ArrayBuffer;
  /** madvise(MADV_DONTNEED) over the whole pages inside the range (an addon without it: absent). Returns the bytes. */
  mapRelease?(h: unknown, offset: number, length: number): number;
  mapFileSize(h: unknown): number;
  mapFaults(h: unknown): number;
  mapClose(h: unknown): void;
  firstNonFinite(a: Float32Array): number;
}

function loadMmap(): LoadedAddon<MmapAddon> {
  return loadAddon('llama_ts_native.node', 'LLAMA_TS_NO_NATIVE', {
    disabled: 'disabled by LLAMA_TS_NO_NATIVE=1',
    missing: 'native addon not built',
    failed: 'native addon failed to load',
  }, (m) => {
    const raw = m as Partial<MmapAddon>;
    if (typeof raw.mapOpen !== 'function' || typeof raw.firstNonFinite !== 'function') throw new Error('the addon has no file mapping (rebuild it: npm run build:native)');
    return raw as MmapAddon;
  }, 'mmap');
}

/** True when files can be mapped (the native addon loaded and has the mapping functions). */
export function canMap(): boolean {
  return loadMmap().addon !== null;
}

/** Why files cannot be mapped, or null when they can. */
export function mapUnavailable(): string | null {
  return loadMmap().error;
}

/** Index of the first NaN or ±Infinity in `a`, or -1: native when the addon is there (one vectorised pass). */
export function firstNonFinite(a: Float32Array): number {
  const addon = loadMmap().addon;
  return addon ? addon.firstNonFinite(a) : firstNonFiniteJs(a);
}

export interface FileBytes {
  readonly path: string;
  readonly size: number;
  /** True when the views are of a mapping (no copies), false on the read path. */
  readonly mapped: boolean;
  /** The whole file as one Uint8Array over the mapping (null on the read path, or past the largest ArrayBuffer). */
  readonly whole: Uint8Array | null;
  /** Bytes [offset, offset + n): a view of the mapping, or a copy read from the file. */
  bytes(offset: number, n: number): Uint8Array;
  /** n float32 values from `offset`: a view of the mapping when it is 4-byte aligned, else a copy. */
  f32(offset: number, n: number): { data: Float32Array; copied: boolean };
  /** Fills `out` with the bytes from `offset`: read straight into it (one copy from the disk or page cache). */
  readInto(offset: number, out: Uint8Array): void;
  /** Throws a UserError when the file was truncated or faulted since it was mapped (no-op on the read path). */
  check(): void;
  /**
   * Gives this process's pages under a view from bytes() back (the whole pages inside it) when the model keeps a
   * converted copy of it instead: they leave the resident set, stay in the page cache, and fault back in from the file
   * if read again. Returns the bytes released (0 on the read path, or for a view this file did not hand out).
   */
  release(view: Uint8Array): number;
}

export interface OpenOptions {
  /** Map the file (when the addon is there); false: the plain read path. */
  map: boolean;
  /** The size a header check accepted: the file must still have exactly this many bytes when it is mapped. */
  expectSize?: number;
  /**
   * MAP_POPULATE: fill the page tables at once (faster first use when every byte is needed, as for inference). Only
   * for a file known (`expectSize`) to take at most half the available memory: a larger one would be read whole
   * only to be evicted again; its pages are faulted in as they are used.
   */
  populate?: boolean;
}

function checkRange(path: string, size: number, offset: number, n: number): void {
  if (!(Number.isInteger(offset) && Number.isInteger(n) && offset >= 0 && n >= 0 && offset + n <= size)) {
    throw new UserError(`'${path}' is truncated or corrupt: bytes ${offset}..${offset + n} lie outside its ${size} bytes`);
  }
}

class ReadFile implements FileBytes {
  readonly mapped = false;
  readonly whole = null;
  constructor(readonly path: string, readonly size: number) {}
  bytes(offset: number, n: number): Uint8Array {
    const out = new Uint8Array(n);
    this.readInto(offset, out);
    return out;
  }
  readInto(offset: number, out: Uint8Array): void {
    const n = out.length;
    checkRange(this.path, this.size, offset, n);
    const fd = openSync(this.path, 'r');
    try {
      let got = 0;
      while (got < n) {
        const k = readSync(fd, out, got, n - got, offset + got);
        if (k <= 0) throw new UserError(`'${this.path}' is truncated: it ended after ${offset + got} bytes while ${offset + n} were expected`);
        got += k;
      }
    } finally {
      closeSync(fd);
    }
  }
  f32(offset: number, n: number): { data: Float32Array; copied: boolean } {
    const b = this.bytes(offset, n * 4);
    return { data: new Float32Array(b.buffer, 0, n), copied: true };
  }
  check(): void {}
  release(): number {
    return 0;
  }
}

class MappedFile implements FileBytes {
  readonly mapped = true;
  readonly whole: Uint8Array | null;
  readonly size: number;
  constructor(readonly path: string, private readonly addon: MmapAddon, private readonly handle: unknown) {
    this.size = addon.mapSize(handle);
    this.whole = this.size <= bufferConstants.MAX_LENGTH ? new Uint8Array(addon.mapRange(handle, 0, this.size)) : null;
  }
  /** File offsets of the buffers mapRange made for views (files past the largest ArrayBuffer, no `whole`). */
  private origins = new WeakMap<ArrayBufferLike, number>();
  private buffer(offset: number, n: number): { buf: ArrayBuffer; at: number } {
    checkRange(this.path, this.size, offset, n);
    if (this.whole) return { buf: this.whole.buffer as ArrayBuffer, at: offset };
    const buf = this.addon.mapRange(this.handle, offset, n);
    this.origins.set(buf, offset);
    return { buf, at: 0 };
  }
  release(view: Uint8Array): number {
    const base = this.whole && view.buffer === this.whole.buffer ? 0 : this.origins.get(view.buffer);
    if (base === undefined || !this.addon.mapRelease) return 0;
    return this.addon.mapRelease(this.handle, base + view.byteOffset, view.byteLength);
  }
  bytes(offset: number, n: number): Uint8Array {
    const { buf, at } = this.buffer(offset, n);
    return new Uint8Array(buf, at, n);
  }
  readInto(offset: number, out: Uint8Array): void {
    out.set(this.bytes(offset, out.length));
  }
  f32(offset: number, n: number): { data: Float32Array; copied: boolean } {
    if (offset % 4 !== 0) return { data: new Float32Array(this.bytes(offset, n * 4).slice().buffer), copied: true };
    const { buf, at } = this.buffer(offset, n * 4);
    return { data: new Float32Array(buf, at, n), copied: false };
  }
  check(): void {
    const now = this.addon.mapFileSize(this.handle);
    const faults = this.addon.mapFaults(this.handle);
    if (now !== this.size || faults > 0) {
      throw new UserError(`model file '${this.path}' changed while in use (${now < 0 ? 'gone' : `${now} bytes now, ${this.size} when it was mapped`}${faults ? `; ${faults} read${faults === 1 ? '' : 's'} past its end returned zeros` : ''}): stopping — the weights are no longer the file's`);
    }
  }
}

/**
 * Opens a model file for reading its tensors: mapped when `map` and the addon allow, else the read path. Refuses,
 * before mapping, a file whose size is not `expectSize`.
 */
export function openModelFile(path: string, o: OpenOptions): FileBytes {
  const addon = o.map ? loadMmap().addon : null;
  if (!addon) {
    const fd = openSync(path, 'r');
    let size: number;
    try {
      size = fstatSync(fd).size;
    } finally {
      closeSync(fd);
    }
    if (o.expectSize !== undefined && size !== o.expectSize) throw changed(path, size, o.expectSize);
    return new ReadFile(path, size);
  }
  let handle: unknown;
  try {
    const populate = Boolean(o.populate) && o.expectSize !== undefined && o.expectSize <= availableMemory().bytes / 2;
    handle = addon.mapOpen(path, populate);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  const size = addon.mapSize(handle);
  if (o.expectSize !== undefined && size !== o.expectSize) {
    addon.mapClose(handle);
    throw changed(path, size, o.expectSize);
  }
  return new MappedFile(path, addon, handle);
}

function changed(path: string, size: number, expected: number): UserError {
  return new UserError(`'${path}' changed while it was being opened (${size} bytes, its header was read from a ${expected}-byte file)`);
}
