import type { Frame } from "../sse/session";
import { ByteBudget } from "./byteBudget";

/** The windows' {@link ByteBudget}: WINDOW_TOTAL_BYTES for all windows of the pod together. */
export { ByteBudget as WindowBudget };

/**
 * A feed's recent window: its last messages, already framed, bounded by count and bytes.
 * It holds every matching message with a sequence in (floor, last] that the stream still holds,
 * so a client whose cursor lies in [floor, last] resumes from memory without asking JetStream
 * anything. What the stream loses (limits, purges, erasures) is taken out by the feed as soon as
 * it learns of it ({@link dropBefore}, {@link remove}, {@link clear}).
 */
export class RecentWindow {
  private frames: Frame[] = [];
  private head = 0;
  private bytesHeld = 0;
  /** Every matching message after this sequence is held (or was never published). */
  floor = 0;
  /** The highest sequence seen. */
  last = 0;

  /**
   * @param maxMessages most frames held (WINDOW_MESSAGES); 0 keeps none.
   * @param maxBytes most frame bytes held (WINDOW_BYTES).
   */
  constructor(
    private readonly maxMessages: number,
    private readonly maxBytes: number,
    private readonly budget: ByteBudget = new ByteBudget(Number.MAX_SAFE_INTEGER),
  ) {}

  get size(): number {
    return this.frames.length - this.head;
  }

  get bytes(): number {
    return this.bytesHeld;
  }

  /** Starts empty: the feed sees everything after `seq`. */
  reset(seq: number): void {
    this.budget.used -= this.bytesHeld;
    this.frames = [];
    this.head = 0;
    this.bytesHeld = 0;
    this.floor = seq;
    this.last = seq;
  }

  /** Adds the newest frame and evicts the oldest past either bound. */
  push(frame: Frame): void {
    this.last = frame.seq;
    this.frames.push(frame);
    this.bytesHeld += frame.buf.length;
    this.budget.used += frame.buf.length;
    while (
      this.size > 0 &&
      (this.size > this.maxMessages ||
        this.bytesHeld > this.maxBytes ||
        this.budget.used > this.budget.max)
    ) {
      const old = this.frames[this.head++] as Frame;
      this.bytesHeld -= old.buf.length;
      this.budget.used -= old.buf.length;
      this.floor = old.seq;
    }
    this.compact();
  }

  private forget(frame: Frame): void {
    this.bytesHeld -= frame.buf.length;
    this.budget.used -= frame.buf.length;
  }

  /** Compacts now and then so the array does not grow with the number of messages ever seen. */
  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.frames.length) {
      this.frames = this.frames.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * Forgets what the stream no longer holds below `first` (its first sequence now: limits, age
   * or a purge removed the rest). Cursors before `first - 1` are no longer covered, so they are
   * answered from JetStream (with a gap notice); when `first - 1` is past `last`, no cursor up to
   * `last` is covered either: the feed cannot tell whether what was removed would have matched.
   * @returns the number of frames dropped.
   */
  dropBefore(first: number): number {
    if (first - 1 <= this.floor) return 0;
    let n = 0;
    while (this.size > 0 && (this.frames[this.head] as Frame).seq < first) {
      this.forget(this.frames[this.head++] as Frame);
      n++;
    }
    this.floor = first - 1;
    this.compact();
    return n;
  }

  /**
   * Removes the frames of messages the stream no longer holds (deleted or erased one by one).
   * Every other matching message of (floor, last] is still held, so coverage is unchanged.
   * @returns the number of frames removed.
   */
  remove(seqs: ReadonlySet<number>): number {
    if (seqs.size === 0 || this.size === 0) return 0;
    const kept: Frame[] = [];
    let n = 0;
    for (let i = this.head; i < this.frames.length; i++) {
      const f = this.frames[i] as Frame;
      if (seqs.has(f.seq)) {
        this.forget(f);
        n++;
      } else kept.push(f);
    }
    if (n > 0) {
      this.frames = kept;
      this.head = 0;
    }
    return n;
  }

  /**
   * Drops every frame, keeping `last`: only a cursor at `last` (or later) stays covered, and
   * what follows arrives live. For when the stream lost messages the window cannot name.
   * @returns the number of frames dropped.
   */
  clear(): number {
    const n = this.size;
    this.reset(this.last);
    return n;
  }

  /** True when every matching message after `seq` is in the window or still to come live. */
  covers(seq: number): boolean {
    return seq >= this.floor && seq <= this.last;
  }

  /** Held frames with a sequence greater than `seq`, oldest first. */
  after(seq: number): Frame[] {
    let lo = this.head;
    let hi = this.frames.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.frames[mid] as Frame).seq <= seq) lo = mid + 1;
      else hi = mid;
    }
    return this.frames.slice(lo);
  }

  /**
   * The cursor after which exactly the last `count` matching messages follow, when the window
   * can tell: it holds at least `count` frames, or it holds all since the stream began.
   */
  cursorForLast(count: number): number | undefined {
    if (this.size >= count) return (this.frames[this.frames.length - count] as Frame).seq - 1;
    return this.floor === 0 ? 0 : undefined;
  }
}
