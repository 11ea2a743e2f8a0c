import { Limiter, type Closable } from "./limiter";

/** Thrown when too many JetStream API calls wait: the session is shed with a retry hint. */
export class ApiQueueFullError extends Error {
  override readonly name = "ApiQueueFullError";
  constructor() {
    super("too many JetStream API calls waiting");
  }
}

/** How one call is made. */
export interface CallOptions {
  /**
   * Clean-up (deleting a consumer): waits its turn but is never refused, and still runs when
   * the client has gone away meanwhile (otherwise the consumer stays until its inactive
   * threshold).
   */
  cleanup?: boolean;
}

/** Runs one JetStream API call (or a short sequence of them, one at a time) under a bound. */
export type ApiCall = <T>(call: () => Promise<T>, opts?: CallOptions) => Promise<T>;

/** Calls at once; for callers that need no bound (tests, the default of optional parameters). */
export const unlimited: ApiCall = (call) => call();

/**
 * Bounds the JetStream API requests that client requests cause (stream info for cursor
 * checks, consumer creation, info and deletion for replays and `?last=` probes): at most
 * `maxConcurrent` in flight per pod, FIFO. Without it one cheap HTTP request can cost
 * JetStream several API calls, and a flood of them queues up on the NATS servers that every
 * pod and every other client of the cluster shares (amplification).
 *
 * `maxQueued` bounds the requests waiting for their first call; past it the request is refused
 * with {@link ApiQueueFullError} and its client is shed with a retry hint (it comes back
 * later, or to another pod). A request whose JetStream work has begun is never refused half-way:
 * its further calls wait their turn whatever the queue holds, so no call already made is wasted,
 * and they are few (one waiting at a time per request, plus clean-ups).
 *
 * A holder must never wait for a second slot while it holds one (each call is one request, or
 * a few made one after another), so slots cannot deadlock.
 */
export class ApiLimiter {
  private readonly slots: Limiter;

  /**
   * @param maxConcurrent API calls in flight at once (JETSTREAM_API_MAX_CONCURRENT, default 32).
   * @param maxQueued requests waiting for their first call (JETSTREAM_API_MAX_QUEUED, default
   *   10000).
   * @param onChange reports (active, queued) after every change, for metrics.
   * @param onRefused called when a request is refused because the queue is full.
   */
  constructor(
    maxConcurrent: number,
    maxQueued: number,
    onChange?: (active: number, queued: number) => void,
    onRefused?: () => void,
  ) {
    this.slots = new Limiter({
      maxConcurrent,
      maxQueued,
      queueFull: () => new ApiQueueFullError(),
      onChange,
      onRefused,
    });
  }

  get running(): number {
    return this.slots.running;
  }

  get queued(): number {
    return this.slots.queued;
  }

  /**
   * Runs `call` once a slot is free and gives the slot back when it settles; refused when the
   * queue is full.
   * @param waiter when it closes while the call is still queued, the call is dropped (rejects).
   */
  async run<T>(call: () => Promise<T>, waiter?: Closable): Promise<T> {
    return this.runAs(call, waiter, false);
  }

  /**
   * The calls of one client request: its first may be refused, the later ones are not; a
   * queued call is dropped if the client goes away first (clean-ups excepted).
   */
  for(waiter: Closable): ApiCall {
    let admitted = false;
    return async (call, opts) => {
      if (opts?.cleanup) return this.runAs(call, undefined, true);
      const release = await this.slots.acquire(waiter, undefined, admitted);
      admitted = true;
      try {
        return await call();
      } finally {
        release();
      }
    };
  }

  private async runAs<T>(
    call: () => Promise<T>,
    waiter: Closable | undefined,
    pastQueueBound: boolean,
  ): Promise<T> {
    const release = await this.slots.acquire(waiter, undefined, pastQueueBound);
    try {
      return await call();
    } finally {
      release();
    }
  }
}
