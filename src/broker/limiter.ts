/** Anything that can tell when it closes (a Session). */
export interface Closable {
  whenClosed(fn: () => void): () => void;
}

/** Settings of a {@link Limiter}. */
export interface LimiterOptions {
  /** Slots held at once. */
  maxConcurrent: number;
  /** Requests allowed to wait for a slot; one more is refused with `queueFull()`. */
  maxQueued: number;
  /** Slots one key (a client address) may hold at once. Default: no bound beyond `maxConcurrent`. */
  maxPerKey?: number;
  /** The error a request gets when the queue is full. */
  queueFull: () => Error;
  /** Reports (active, queued) after every change, for metrics. */
  onChange?: (active: number, queued: number) => void;
  /** Called when a request is refused because the queue is full. */
  onRefused?: () => void;
  /** Called when a request has to wait because its key already holds `maxPerKey` slots. */
  onKeyLimited?: () => void;
}

interface Waiter {
  readonly key: string | undefined;
  readonly grant: () => void;
}

/**
 * A bounded number of slots with a bounded FIFO queue in front, and optionally a bound per key
 * (a client address): a waiter whose key already holds `maxPerKey` slots is passed over, so one
 * key can never hold more than its share however many of its requests queue first, and
 * everyone else's requests are not stuck behind them. Order is FIFO among the waiters that
 * may take a slot.
 *
 * Every acquire is given back through the function it returns, exactly once (twice is once).
 */
export class Limiter {
  private active = 0;
  private readonly waiting: Waiter[] = [];
  private readonly perKey = new Map<string, number>();

  constructor(private readonly opts: LimiterOptions) {}

  /** Slots held now. */
  get running(): number {
    return this.active;
  }

  /** Requests waiting for a slot now. */
  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Waits for a slot; the returned function gives it back (call it exactly once).
   * @param waiter when it closes while queued, its place is given up and the wait rejects.
   * @param key whose share the slot counts against (the client address); none: no share.
   * @param pastQueueBound wait even when `maxQueued` already wait (work already admitted).
   */
  async acquire(waiter?: Closable, key?: string, pastQueueBound = false): Promise<() => void> {
    const keyLimited = !this.underKeyBound(key);
    if (this.active < this.opts.maxConcurrent && !keyLimited) {
      this.active++;
      this.take(key);
      this.report();
      return this.releaser(key);
    }
    if (this.waiting.length >= this.opts.maxQueued && !pastQueueBound) {
      this.opts.onRefused?.();
      throw this.opts.queueFull();
    }
    if (keyLimited) this.opts.onKeyLimited?.();
    await new Promise<void>((resolve, reject) => {
      let unhook = () => {};
      const entry: Waiter = {
        key,
        grant: () => {
          unhook();
          resolve();
        },
      };
      this.waiting.push(entry);
      this.report();
      unhook =
        waiter?.whenClosed(() => {
          const i = this.waiting.indexOf(entry);
          if (i >= 0) this.waiting.splice(i, 1);
          this.report();
          reject(new Error("closed while waiting for a slot"));
        }) ?? unhook;
    });
    return this.releaser(key);
  }

  private releaser(key: string | undefined): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.give(key);
    };
  }

  /**
   * Passes the slot straight on to the first waiter allowed to take it (`active` stays the
   * same), or frees it. Waiters only become allowed when a slot or a key's share is given back,
   * both of which happen here: so no allowed waiter ever waits while a slot is free.
   */
  private give(key: string | undefined): void {
    this.untake(key);
    const i = this.waiting.findIndex((w) => this.underKeyBound(w.key));
    if (i >= 0) {
      const next = this.waiting.splice(i, 1)[0] as Waiter;
      this.take(next.key);
      next.grant();
    } else this.active--;
    this.report();
  }

  private underKeyBound(key: string | undefined): boolean {
    const max = this.opts.maxPerKey;
    return key === undefined || max === undefined || (this.perKey.get(key) ?? 0) < max;
  }

  private take(key: string | undefined): void {
    if (key === undefined || this.opts.maxPerKey === undefined) return;
    this.perKey.set(key, (this.perKey.get(key) ?? 0) + 1);
  }

  private untake(key: string | undefined): void {
    if (key === undefined || this.opts.maxPerKey === undefined) return;
    const left = (this.perKey.get(key) ?? 1) - 1;
    if (left <= 0) this.perKey.delete(key);
    else this.perKey.set(key, left);
  }

  private report(): void {
    this.opts.onChange?.(this.active, this.waiting.length);
  }
}
