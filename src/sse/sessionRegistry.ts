import { encodeComment } from "./encoder";
import type { Session } from "./session";

/** Why admission refused a request. */
export type Refusal = "full" | "client-limit";

const HEARTBEAT = encodeComment("ping");
/** How often a drain closes the sessions that are due, in ms. */
const DRAIN_TICK_MS = 10;
/** Sessions written per turn of the event loop in a heartbeat pass. */
export const HEARTBEAT_SLICE = 1_000;

/**
 * Every open session on this pod: admission against the connection bounds (in-flight
 * requests count, so a burst cannot overshoot), the shared heartbeat, and the drain at shutdown.
 */
export class SessionRegistry {
  private readonly sessions = new Set<Session>();
  private readonly perClient = new Map<string, number>();
  private slots = 0;
  private heartbeat: NodeJS.Timeout | undefined;
  private beating = false;

  /**
   * @param maxConnections sessions per pod (MAX_CONNECTIONS).
   * @param maxPerClient sessions per client address (MAX_CONNECTIONS_PER_CLIENT).
   */
  constructor(
    private readonly maxConnections: number,
    private readonly maxPerClient: number,
  ) {}

  /** Connection slots in use, including requests still being set up. */
  get used(): number {
    return this.slots;
  }

  get full(): boolean {
    return this.slots >= this.maxConnections;
  }

  /**
   * Reserves a slot, counted against `client` as well when given (MAX_CONNECTIONS_PER_CLIENT;
   * undefined: no per-client bound applies), or says why not. The ticket is the slot's one
   * owner: its `release()` gives it back, once, however often it is called.
   */
  admit(client: string | undefined): AdmissionTicket | Refusal {
    if (this.slots >= this.maxConnections) return "full";
    if (client !== undefined) {
      const n = this.perClient.get(client) ?? 0;
      if (n >= this.maxPerClient) return "client-limit";
      this.perClient.set(client, n + 1);
    }
    this.slots++;
    return new AdmissionTicket(this, client);
  }

  /** For {@link AdmissionTicket.release} only. */
  giveBack(client: string | undefined): void {
    this.slots--;
    if (client === undefined) return;
    const left = (this.perClient.get(client) ?? 1) - 1;
    if (left <= 0) this.perClient.delete(client);
    else this.perClient.set(client, left);
  }

  add(session: Session): void {
    this.sessions.add(session);
  }

  remove(session: Session): void {
    this.sessions.delete(session);
  }

  get size(): number {
    return this.sessions.size;
  }

  /**
   * One timer for all sessions writes a comment every `intervalMs`, so idle connections
   * survive proxies' idle timeouts; a timer per session would cost memory per connection.
   * A pass writes {@link HEARTBEAT_SLICE} sessions at a time and yields to I/O in between:
   * at tens of thousands of connections one pass takes tens of milliseconds, which would
   * otherwise delay every event due in that time.
   */
  startHeartbeat(intervalMs: number): void {
    this.heartbeat = setInterval(() => this.beat(), intervalMs);
    this.heartbeat.unref();
  }

  /**
   * One heartbeat pass. A Set's iterator skips sessions removed and visits those added
   * meanwhile. A pass still running when the next is due (a loaded event loop) is not doubled.
   */
  private beat(): void {
    if (this.beating) return;
    this.beating = true;
    const it = this.sessions.values();
    const slice = (): void => {
      for (let n = 0; n < HEARTBEAT_SLICE; n++) {
        const next = it.next();
        if (next.done) {
          this.beating = false;
          return;
        }
        next.value.control(HEARTBEAT);
      }
      setImmediate(slice);
    };
    slice();
  }

  stopHeartbeat(): void {
    clearInterval(this.heartbeat);
  }

  /**
   * Closes every session at a random moment within `windowMs`, each with a `retry:` hint drawn
   * from [retryMs/2, retryMs*1.5), so reconnects reach the other pods spread out, not as a storm.
   * Resolves when all are closed, by the drain or by their clients.
   *
   * The sessions are shuffled, then closed in that order evenly over the window, by one timer:
   * a timer per session would be 100,000 timers at 100,000 connections, all created at once.
   */
  async drain(windowMs: number, retryMs: number, rnd = Math.random): Promise<void> {
    const all = [...this.sessions];
    for (let i = all.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [all[i], all[j]] = [all[j] as Session, all[i] as Session];
    }
    // Session k closes at a random moment of the k-th of n equal slots of the window: uniform
    // over the window as a whole (the order is random), and evenly spread.
    const n = all.length;
    const slotTime = (k: number) => ((k + rnd()) / n) * windowMs;
    const start = performance.now();
    let next = 0;
    let nextAt = slotTime(0);
    let open = n;
    let timer: NodeJS.Timeout | undefined;
    let finished = n === 0;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        finished = true;
        clearInterval(timer);
        resolve();
      };
      const tick = (): void => {
        const elapsed = performance.now() - start;
        while (!finished && next < n && (windowMs <= 0 || nextAt <= elapsed)) {
          const s = all[next] as Session;
          if (!s.closed) s.close("drain", jitter(retryMs, rnd));
          next++;
          nextAt = slotTime(next);
        }
        if (next >= n) done();
      };
      // Clients that leave on their own end the drain early when they are the last.
      for (const s of all)
        s.whenClosed(() => {
          if (--open === 0) done();
        });
      if (finished) return done();
      timer = setInterval(tick, DRAIN_TICK_MS);
      tick();
    });
  }
}

/** A retry delay drawn uniformly from [ms/2, ms*1.5). */
export function jitter(ms: number, rnd = Math.random): number {
  return Math.floor(ms / 2 + rnd() * ms);
}

/** One admitted request's connection slot; see {@link SessionRegistry.admit}. */
export class AdmissionTicket {
  private released = false;

  constructor(
    private readonly registry: SessionRegistry,
    private readonly client: string | undefined,
  ) {}

  /** Gives the slot back; later calls do nothing, so every path may call it. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.registry.giveBack(this.client);
  }
}
