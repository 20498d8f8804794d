/** Learning-rate schedule of the paper: linear warmup, then cosine decay to minRatio·peak at the last step. */
export interface ScheduleOptions {
  peakLr: number;
  warmupSteps: number;
  totalSteps: number;
  /** Final learning rate as a fraction of the peak (LLaMA: 0.1). */
  minRatio: number;
}

/** Learning rate for 0-based step `step`. */
export function learningRate(step: number, o: ScheduleOptions): number {
  if (o.warmupSteps > 0 && step < o.warmupSteps) return (o.peakLr * (step + 1)) / o.warmupSteps;
  const decaySteps = Math.max(1, o.totalSteps - o.warmupSteps);
  const progress = Math.min(1, (step - o.warmupSteps) / decaySteps);
  const minLr = o.peakLr * o.minRatio;
  return minLr + 0.5 * (o.peakLr - minLr) * (1 + Math.cos(Math.PI * progress));
}
