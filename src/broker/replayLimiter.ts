/** Thrown when the replay queue is full: the session is shed with a retry hint. */
export class ReplayQueueFullError extends Error {
  override readonly name = "ReplayQueueFullError";
  constructor() {
    super("too many replays waiting");
  }
}

/** Anything that can tell when it closes (a Session). */
export interface Closable {
  whenClosed(fn: () => void): () => void;
}

/**
 * Bounds how many replay consumers run at once, so a reconnect storm queues replays instead
 * of opening thousands of consumers on NATS together (invariant 2). FIFO, and bounded too.
 */
export class ReplayLimiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  /**
   * @param maxConcurrent replays running at once (REPLAY_MAX_CONCURRENT).
   * @param maxQueued replays allowed to wait (REPLAY_MAX_QUEUED).
   * @param onChange reports (active, queued) after every change, for metrics.
   */
  constructor(
    private readonly maxConcurrent: number,
    private readonly maxQueued: number,
    private readonly onChange: (active: number, queued: number) => void = () => {},
  ) {}

  get running(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Waits for a slot; the returned function gives it back (call it exactly once).
   * @param waiter when it closes while queued, its place is given up and the wait rejects.
   */
  async acquire(waiter?: Closable): Promise<() => void> {
    if (this.active < this.maxConcurrent) {
      this.active++;
      this.report();
      return this.releaser();
    }
    if (this.waiting.length >= this.maxQueued) throw new ReplayQueueFullError();
    await new Promise<void>((resolve, reject) => {
      let unhook = () => {};
      const grant = () => {
        unhook();
        resolve();
      };
      this.waiting.push(grant);
      this.report();
      unhook =
        waiter?.whenClosed(() => {
          const i = this.waiting.indexOf(grant);
          if (i >= 0) this.waiting.splice(i, 1);
          this.report();
          reject(new Error("closed while waiting for a replay slot"));
        }) ?? unhook;
    });
    return this.releaser();
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (next)
        next(); // the slot passes straight on; `active` stays the same
      else this.active--;
      this.report();
    };
  }

  private report(): void {
    this.onChange(this.active, this.waiting.length);
  }
}
