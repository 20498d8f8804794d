/** A one-line progress bar on terminals; plain periodic lines elsewhere (CI logs, pipes). */
export class Progress {
  private start = Date.now();
  private lastLine = 0;
  private readonly tty: boolean;

  constructor(private total: number, private label: string, private stream: NodeJS.WriteStream = process.stderr, private plainEveryMs = 5000) {
    this.tty = Boolean(stream.isTTY) && !process.env.CI;
  }

  update(done: number, info: string): void {
    const now = Date.now();
    const elapsed = (now - this.start) / 1000;
    const eta = done > 0 ? (elapsed / done) * (this.total - done) : NaN;
    if (this.tty) {
      const width = 24;
      const filled = Math.round((width * done) / Math.max(1, this.total));
      const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
      this.stream.write(`\r${this.label} ${bar} ${done}/${this.total} ${info} ETA ${fmtTime(eta)}\x1b[K`);
    } else if (now - this.lastLine >= this.plainEveryMs || done === this.total) {
      this.lastLine = now;
      this.stream.write(`${this.label} ${done}/${this.total} ${info} elapsed ${fmtTime(elapsed)} ETA ${fmtTime(eta)}\n`);
    }
  }

  /** Prints a line above the bar. */
  log(line: string): void {
    this.stream.write(this.tty ? `\r\x1b[K${line}\n` : `${line}\n`);
  }

  done(): void {
    if (this.tty) this.stream.write('\n');
  }
}

export function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '--';
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
