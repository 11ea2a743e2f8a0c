import { TokenBucket } from "../../src/broker/tokenBucket";

describe("TokenBucket", () => {
  it("allows a burst of one second's worth, then the rate", () => {
    let t = 0;
    const bucket = new TokenBucket(5, undefined, () => t);
    const burst = Array.from({ length: 7 }, () => bucket.take());
    expect(burst).toEqual([true, true, true, true, true, false, false]);
    t = 200; // one token per 200 ms
    expect(bucket.take()).toBe(true);
    expect(bucket.take()).toBe(false);
  });

  it("never saves up more than its burst", () => {
    let t = 0;
    const bucket = new TokenBucket(2, 3, () => t);
    t = 60_000;
    const taken = Array.from({ length: 5 }, () => bucket.take()).filter(Boolean);
    expect(taken).toHaveLength(3);
  });
});
