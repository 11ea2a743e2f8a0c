import type { Frame } from "../sse/session";
import { ByteBudget } from "./byteBudget";

/** The rings' {@link ByteBudget}: REPLAY_SHARED_BUFFER_BYTES for all shared runs together. */
export { ByteBudget as RingBudget };

/**
 * The frames one shared replay run has read, oldest first, bounded by its owner. It holds every
 * matching message with a sequence in (floor, last]: a session whose cursor lies in
 * [floor, last] catches up from it and then follows what the run reads next.
 *
 * Pure: no timers, no NATS; the run decides when to push and when to evict.
 */
export class ReplayRing {
  private frames: Frame[] = [];
  private head = 0;
  private bytesHeld = 0;
  /** Every matching message after this sequence up to `last` is held. */
  floor: number;
  /** The highest sequence read (the newest frame's, or the start). */
  last: number;

  /** @param startAfter the run reads from `startAfter + 1`. */
  constructor(
    startAfter: number,
    private readonly budget: ByteBudget = new ByteBudget(Number.MAX_SAFE_INTEGER),
  ) {
    this.floor = startAfter;
    this.last = startAfter;
  }

  get size(): number {
    return this.frames.length - this.head;
  }

  get bytes(): number {
    return this.bytesHeld;
  }

  /** The oldest frame held, if any. */
  get oldest(): Frame | undefined {
    return this.frames[this.head];
  }

  /** The `i`-th frame held, oldest first (0: the oldest), if any. */
  at(i: number): Frame | undefined {
    return i < 0 ? undefined : this.frames[this.head + i];
  }

  /** Appends the next frame read (sequences strictly increase). */
  push(frame: Frame): void {
    if (frame.seq <= this.last) throw new RangeError(`frame ${frame.seq} after ${this.last}`);
    this.frames.push(frame);
    this.last = frame.seq;
    this.bytesHeld += frame.buf.length;
    this.budget.used += frame.buf.length;
  }

  /** Gives up the oldest frame: cursors before its sequence are no longer covered. */
  shift(): Frame | undefined {
    if (this.size === 0) return undefined;
    const f = this.frames[this.head++] as Frame;
    this.bytesHeld -= f.buf.length;
    this.budget.used -= f.buf.length;
    this.floor = f.seq;
    if (this.head > 1024 && this.head * 2 > this.frames.length) {
      this.frames = this.frames.slice(this.head);
      this.head = 0;
    }
    return f;
  }

  /** Gives every frame back to the budget (the run ended). */
  clear(): void {
    this.budget.used -= this.bytesHeld;
    this.frames = [];
    this.head = 0;
    this.bytesHeld = 0;
    this.floor = this.last;
  }

  /** True when a session at `seq` can take every frame it needs next from here. */
  covers(seq: number): boolean {
    return seq >= this.floor && seq <= this.last;
  }

  /** Held frames with a sequence greater than `seq`, oldest first, at most `max`. */
  after(seq: number, max = Number.MAX_SAFE_INTEGER): Frame[] {
    let lo = this.head;
    let hi = this.frames.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.frames[mid] as Frame).seq <= seq) lo = mid + 1;
      else hi = mid;
    }
    return this.frames.slice(lo, Math.min(this.frames.length, lo + max));
  }
}

/** What the registry knows of a run when it decides where a session's replay goes. */
export interface RunView {
  /**
   * Pending (waiting for its slot: its start can still move down), reading, done (it met the
   * window or the stream's end; its ring still serves), or ended (failed: not to be joined).
   */
  readonly state: "pending" | "reading" | "done" | "ended";
  /** Pending: where it will start; otherwise its ring's floor. */
  readonly floor: number;
  /** Pending: its start; otherwise the last sequence its ring holds. */
  readonly last: number;
}

/**
 * The join rule. A session at `cursor` joins the first run that will hand it every frame after
 * its cursor without reading anything twice:
 * - a reading run whose ring still holds what follows the cursor (floor ≤ cursor), and which
 *   is not more than `distance` sequences short of the cursor (the session waits for it to get
 *   there, so not too long);
 * - a done run (it met the window or the stream's end) whose ring holds frames after the
 *   cursor: the session takes the rest of the ring, then continues from the window;
 * - a pending run within `distance` of the cursor either way (its start moves down to the
 *   lowest cursor among its members when it begins).
 * Reading and done runs come first (their frames are already in memory). None: start a run.
 */
export function pickRun<R extends RunView>(
  runs: Iterable<R>,
  cursor: number,
  distance: number,
): R | undefined {
  let pending: R | undefined;
  for (const r of runs) {
    if (r.state === "reading" && cursor >= r.floor && cursor <= r.last + distance) return r;
    // A done run has nothing for a cursor at its end: the window serves that one.
    if (r.state === "done" && cursor >= r.floor && cursor < r.last) return r;
    if (
      r.state === "pending" &&
      pending === undefined &&
      cursor >= r.floor - distance &&
      cursor <= r.last + distance
    )
      pending = r;
  }
  return pending;
}

/**
 * Pacing: how many of the ring's oldest frames can go now so that it holds at most `keep`
 * frames, without taking one any member still needs (`slowest`: the lowest member position).
 */
export function evictable(ring: ReplayRing, keep: number, slowest: number): number {
  const want = ring.size - keep;
  if (want <= 0) return 0;
  const candidates = ring.after(ring.floor, want);
  let n = 0;
  for (const f of candidates) {
    if (f.seq > slowest) break;
    n++;
  }
  return n;
}
