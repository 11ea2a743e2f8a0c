import type { Frame } from "../sse/session";

/**
 * Bytes held by all windows of the pod together, against WINDOW_TOTAL_BYTES. A window that
 * pushes past the budget gives up its own oldest frames, so the bound holds whatever the
 * number of feeds.
 */
export class WindowBudget {
  used = 0;
  /** @param max bytes all windows may hold together (WINDOW_TOTAL_BYTES). */
  constructor(readonly max: number) {}
}

/**
 * A feed's recent window: its last messages, already framed, bounded by count and bytes.
 * It holds every matching message with a sequence in (floor, last], so a client whose cursor
 * lies in [floor, last] resumes from memory without asking JetStream anything.
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
    private readonly budget: WindowBudget = new WindowBudget(Number.MAX_SAFE_INTEGER),
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
    // Compact now and then so the array does not grow with the number of messages ever seen.
    if (this.head > 1024 && this.head * 2 > this.frames.length) {
      this.frames = this.frames.slice(this.head);
      this.head = 0;
    }
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
