/**
 * Ends things at a time, with one timer for all of them: a timer per session would cost memory
 * for as long as each stream is open. Times are rounded up to `tickMs` (token `exp` claims are
 * whole seconds anyway), so nothing ends before its time.
 */
export class ExpiryWheel<T> {
  private readonly buckets = new Map<number, Set<T>>();
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param onExpire called once per item whose time has come (and that was not removed).
   * @param tickMs resolution, in ms. Default 1000.
   */
  /**
   * @param schedule starts the repeating timer (default `setInterval`); the gateway passes one
   * that starts it outside any request's trace context.
   */
  constructor(
    private readonly onExpire: (item: T) => void,
    private readonly tickMs = 1_000,
    private readonly now: () => number = Date.now,
    private readonly schedule: (fn: () => void, ms: number) => NodeJS.Timeout = setInterval,
  ) {}

  /** Items waiting. */
  get size(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.size;
    return n;
  }

  /** Ends `item` at `atMs` (ms since the epoch); keep `atMs` to {@link remove} it. */
  add(item: T, atMs: number): void {
    const key = Math.ceil(atMs / this.tickMs);
    let bucket = this.buckets.get(key);
    if (!bucket) this.buckets.set(key, (bucket = new Set()));
    bucket.add(item);
    this.timer ??= this.schedule(() => this.tick(), this.tickMs).unref();
  }

  remove(item: T, atMs: number): void {
    const key = Math.ceil(atMs / this.tickMs);
    const bucket = this.buckets.get(key);
    if (!bucket?.delete(item)) return;
    if (bucket.size === 0) this.buckets.delete(key);
    this.idle();
  }

  /** Ends every item whose time has come; runs every tick. */
  tick(): void {
    const due = Math.floor(this.now() / this.tickMs);
    for (const [key, bucket] of this.buckets) {
      if (key > due) continue;
      this.buckets.delete(key);
      for (const item of bucket) this.onExpire(item);
    }
    this.idle();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private idle(): void {
    if (this.buckets.size === 0) this.stop();
  }
}
