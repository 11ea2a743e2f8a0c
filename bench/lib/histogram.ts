/**
 * A log-bucketed latency histogram (1% relative precision from 1 µs up), small enough to send
 * between processes and merge, so percentiles cover every delivery rather than a sample.
 */
const GROWTH = Math.log(1.01);

export class Histogram {
  counts: Record<number, number> = {};
  total = 0;

  /** Records a latency in milliseconds. */
  add(ms: number): void {
    const us = Math.max(1, ms * 1000);
    const b = Math.floor(Math.log(us) / GROWTH);
    this.counts[b] = (this.counts[b] ?? 0) + 1;
    this.total++;
  }

  merge(other: { counts: Record<number, number>; total: number }): void {
    for (const [b, n] of Object.entries(other.counts))
      this.counts[Number(b)] = (this.counts[Number(b)] ?? 0) + n;
    this.total += other.total;
  }

  /** The latency in milliseconds below which `p` (0..1) of the records fall. */
  percentile(p: number): number {
    if (this.total === 0) return NaN;
    const rank = Math.ceil(p * this.total);
    let seen = 0;
    for (const b of Object.keys(this.counts)
      .map(Number)
      .sort((x, y) => x - y)) {
      seen += this.counts[b] as number;
      if (seen >= rank) return Math.exp((b + 0.5) * GROWTH) / 1000;
    }
    return NaN;
  }
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}
