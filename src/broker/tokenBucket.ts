/**
 * A token bucket: `ratePerSecond` tokens a second, at most `burst` saved up. Bounds how often
 * something may happen (feed creations: FEED_CREATE_RATE) without a timer.
 */
export class TokenBucket {
  private tokens: number;
  private at: number;

  /**
   * @param ratePerSecond tokens added per second.
   * @param burst most tokens held at once; default: one second's worth.
   */
  constructor(
    readonly ratePerSecond: number,
    readonly burst = ratePerSecond,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.at = now();
  }

  /** Takes a token if one is there; false otherwise (nothing is taken). */
  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.at) / 1_000) * this.ratePerSecond);
    this.at = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
