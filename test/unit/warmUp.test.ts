import type { StreamSnapshot } from "../../src/broker/streamMonitor";
import { warmUpStart } from "../../src/broker/warmUp";

const snapshot = (s: Partial<StreamSnapshot>): StreamSnapshot => ({
  first: 1,
  last: 0,
  messages: 0,
  bytes: 0,
  numDeleted: 0,
  created: "2026-01-01T00:00:00Z",
  at: 0,
  ...s,
});

describe("warmUpStart", () => {
  it("reads the whole stream when it fits three quarters of the budget", () => {
    expect(
      warmUpStart(snapshot({ first: 5, last: 104, messages: 100, bytes: 7_000 }), 10_000),
    ).toBe(5);
  });

  it("reads only the tail whose average size fits three quarters of the budget", () => {
    // 1,000 messages of 100 bytes on average: 75 of them fit 7,500 bytes.
    const s = snapshot({ first: 1, last: 1_000, messages: 1_000, bytes: 100_000 });
    expect(warmUpStart(s, 10_000)).toBe(926);
  });

  it("reads nothing with a zero budget, an empty stream, or messages larger than the budget", () => {
    expect(warmUpStart(snapshot({ last: 10, messages: 10, bytes: 1_000 }), 0)).toBe(11);
    expect(warmUpStart(snapshot({ first: 11, last: 10 }), 10_000)).toBe(11);
    expect(warmUpStart(snapshot({ last: 10, messages: 10, bytes: 10_000_000 }), 1_000)).toBe(11);
  });
});
