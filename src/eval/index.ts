/** Evaluation harness: task files (task.ts), their prompts, requests and metrics (run.ts), batched scoring (loglik.ts). */
export { loadTask, resolveTaskPaths, bundledTaskNames, BUNDLED_TASKS_DIR, METRICS, type Task, type TaskDoc, type TaskSpec, type OutputType } from './task.js';
export { runTask, buildContext, drawFewshot, checkShots, continuationRequest, rollingWindows, type EvalOptions, type TaskResult } from './run.js';
export { scoreLoglik, type LoglikRequest, type LoglikResult, type ScoreOptions } from './loglik.js';
export { exactMatch, normalizeAnswer, cutAnswer } from './normalize.js';
