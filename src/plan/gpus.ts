/**
 * Accelerator table for the cluster simulator. Users extend or override it with a JSON file
 * (`--gpu-table FILE`): an object mapping a GPU name to the fields of `GpuSpec` (all required for a new name;
 * a known name may give only the fields to change).
 *
 * Sources: NVIDIA data sheets (A100: 312 TFLOP/s dense bf16, NVLink 3 600 GB/s total = 300 GB/s each way;
 * H100 SXM5 and H200: 989 TFLOP/s dense bf16, NVLink 4 900 GB/s total = 450 GB/s each way). Inter-node bandwidth
 * assumes one NIC per GPU as in DGX/HGX systems: HDR 200 Gb/s (25 GB/s) for A100, NDR 400 Gb/s (50 GB/s) for
 * H100/H200. Bandwidths are per GPU, per direction — what one rank can push into a ring collective.
 *
 * `matmulEfficiency` is the single calibrated parameter of the simulator: the fraction of peak dense bf16 that
 * the model's FLOPs run at (large matrix products, together with the small overhead of the elementwise kernels
 * that ride along). For A100 it is calibrated on the LLaMA-65B run (Touvron et al. 2023) and checked on
 * Korthikanti et al. 2022; the H100/H200 values are assumptions (large GEMMs reach a smaller fraction of the
 * much higher peak) and should be calibrated by users with their own measurements.
 */
import { UserError } from '../util/errors.js';

export interface GpuSpec {
  /** Peak dense bf16 tensor-core throughput, TFLOP/s. */
  peakTflops: number;
  /** Device memory, GiB. */
  memoryGiB: number;
  /** Per-GPU, per-direction bandwidth inside a node (NVLink), GB/s (1e9 bytes). */
  intraNodeGBps: number;
  /** Per-GPU, per-direction bandwidth between nodes (network), GB/s. */
  interNodeGBps: number;
  gpusPerNode: number;
  /** Fraction of peak reached on the model's FLOPs; see the file comment. */
  matmulEfficiency: number;
}

export const GPUS: Record<string, GpuSpec> = {
  'A100-40GB': { peakTflops: 312, memoryGiB: 40, intraNodeGBps: 300, interNodeGBps: 25, gpusPerNode: 8, matmulEfficiency: 0.65 },
  'A100-80GB': { peakTflops: 312, memoryGiB: 80, intraNodeGBps: 300, interNodeGBps: 25, gpusPerNode: 8, matmulEfficiency: 0.65 },
  'H100-SXM': { peakTflops: 989, memoryGiB: 80, intraNodeGBps: 450, interNodeGBps: 50, gpusPerNode: 8, matmulEfficiency: 0.5 },
  H200: { peakTflops: 989, memoryGiB: 140, intraNodeGBps: 450, interNodeGBps: 50, gpusPerNode: 8, matmulEfficiency: 0.5 },
};

const FIELDS: (keyof GpuSpec)[] = ['peakTflops', 'memoryGiB', 'intraNodeGBps', 'interNodeGBps', 'gpusPerNode', 'matmulEfficiency'];

export function validateGpu(name: string, g: GpuSpec): void {
  for (const k of FIELDS) {
    const v = g[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new UserError(`GPU '${name}': ${k} must be a positive number, got ${String(v)}`);
  }
  if (!Number.isInteger(g.gpusPerNode)) throw new UserError(`GPU '${name}': gpusPerNode must be an integer, got ${g.gpusPerNode}`);
  if (g.matmulEfficiency > 1) throw new UserError(`GPU '${name}': matmulEfficiency must be at most 1, got ${g.matmulEfficiency}`);
}

/** The built-in table merged with a user's JSON object (already parsed). */
export function mergeGpuTable(user: unknown, source = 'GPU table', base: Record<string, GpuSpec> = GPUS): Record<string, GpuSpec> {
  if (typeof user !== 'object' || user === null || Array.isArray(user)) throw new UserError(`${source}: expected a JSON object of GPU name -> spec`);
  const table: Record<string, GpuSpec> = {};
  for (const [k, v] of Object.entries(base)) table[k] = { ...v };
  for (const [name, spec] of Object.entries(user as Record<string, unknown>)) {
    if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw new UserError(`${source}: '${name}' must be an object`);
    const fields = spec as Record<string, unknown>;
    for (const k of Object.keys(fields)) {
      if (!(FIELDS as string[]).includes(k)) throw new UserError(`${source}: '${name}' has unknown field '${k}' (known: ${FIELDS.join(', ')})`);
    }
    const prev = table[name];
    if (!prev) {
      const missing = FIELDS.filter((k) => !(k in fields));
      if (missing.length) throw new UserError(`${source}: new GPU '${name}' is missing ${missing.join(', ')}`);
    }
    const merged = { ...(prev ?? {}), ...fields } as GpuSpec;
    validateGpu(name, merged);
    table[name] = merged;
  }
  return table;
}

export function getGpu(name: string, table: Record<string, GpuSpec> = GPUS): GpuSpec {
  const g = table[name];
  if (!g) throw new UserError(`unknown GPU type '${name}' (known: ${Object.keys(table).join(', ')})`);
  return { ...g };
}
