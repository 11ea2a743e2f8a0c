import type { JsMsg } from "@nats-io/jetstream";
import type { StreamSnapshot } from "../../src/broker/streamMonitor";
import { warmUpStart, wireSize } from "../../src/broker/warmUp";

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
    const s = snapshot({ first: 5, last: 104, messages: 100, bytes: 7_000 });
    expect(warmUpStart(s, 100_000)).toBe(5);
  });

  it("reads only the tail that fits three quarters of the budget, counting what delivery adds", () => {
    // 1,000 messages of 100 bytes stored, 228 delivered: 328 of them fit 75,000 bytes.
    const s = snapshot({ first: 1, last: 1_000, messages: 1_000, bytes: 100_000 });
    expect(warmUpStart(s, 100_000)).toBe(673);
  });

  it("reads nothing with a zero budget, an empty stream, or messages larger than the budget", () => {
    expect(warmUpStart(snapshot({ last: 10, messages: 10, bytes: 1_000 }), 0)).toBe(11);
    expect(warmUpStart(snapshot({ first: 11, last: 10 }), 10_000)).toBe(11);
    expect(warmUpStart(snapshot({ last: 10, messages: 10, bytes: 10_000_000 }), 1_000)).toBe(11);
  });
});

describe("wireSize", () => {
  const message = (reply: string, info: JsMsg["info"], data: string): JsMsg =>
    ({
      subject: "orders.eu.42",
      data: Buffer.from(data),
      headers: undefined,
      info,
      reply,
    }) as unknown as JsMsg;

  it("is never below what JetStream counts against max_bytes (subject, ack reply, payload)", () => {
    const info = {
      domain: "",
      account_hash: undefined,
      stream: "ORDERS",
      consumer: "oc_4TYWKJ3LQRNV2HX0M8EFAB_1",
      deliveryCount: 1,
      streamSequence: 123_456_789,
      deliverySequence: 42,
      timestampNanos: 1_795_649_808_243_123_456,
      pending: 99_999,
      redelivered: false,
    };
    const ts = "1795649808243123456";
    const v1 = `$JS.ACK.ORDERS.${info.consumer}.1.123456789.42.${ts}.99999`;
    const v2 = `$JS.ACK._.ABCDEFGHIJKLMNOPQRSTUV.ORDERS.${info.consumer}.1.123456789.42.${ts}.99999.RnD0mT0k3n`;
    const data = "x".repeat(100);
    for (const [reply, i] of [
      [v1, info],
      [v2, { ...info, account_hash: "ABCDEFGHIJKLMNOPQRSTUV" }],
    ] as const) {
      const counted = "orders.eu.42".length + reply.length + data.length;
      const size = wireSize(message(reply, i, data));
      expect(size).toBeGreaterThanOrEqual(counted);
      expect(size).toBeLessThan(counted + 64); // and not wildly above it
    }
  });
});
