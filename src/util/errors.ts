/**
 * A mistake the user can fix (bad flag, missing file, corrupt checkpoint...).
 * The CLI prints its message as one line and exits non-zero, without a stack trace.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

export function userAssert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new UserError(message);
}
