import type { JetStreamManager } from "@nats-io/jetstream";
import { ApiQueueFullError } from "../../src/broker/apiLimiter";
import { StreamResolver } from "../../src/broker/streams";

/**
 * How the resolver uses its limiter, with a stand-in for the stream-names lookup (its JetStream
 * side is covered by the integration tests against a real nats-server).
 */
function fakeJsm(streams: Record<string, string[]>): JetStreamManager {
  const names = (filter: string) =>
    (async function* () {
      for (const [name, subjects] of Object.entries(streams))
        if (subjects.some((s) => s === filter || s.endsWith(">"))) yield name;
    })();
  const info = async (name: string) => ({ config: { subjects: streams[name] } });
  return { streams: { names, info } } as unknown as JetStreamManager;
}

describe("StreamResolver", () => {
  it("limit - every lookup of a subject not seen before goes through the limiter, cache hits do not", async () => {
    let limited = 0;
    const resolver = new StreamResolver(
      fakeJsm({ ORDERS: ["orders.>"] }),
      60_000,
      false,
      Date.now,
      (call) => {
        limited++;
        return call();
      },
    );
    expect(await resolver.resolve(["orders.a"])).toBe("ORDERS");
    expect(await resolver.resolve(["orders.b"])).toBe("ORDERS");
    expect(limited).toBe(2);
    expect(await resolver.resolve(["orders.a"])).toBe("ORDERS");
    expect(limited).toBe(2);
  });

  it("limit - a lookup the limiter refuses rejects with its error and is not remembered", async () => {
    let calls = 0;
    const resolver = new StreamResolver(
      fakeJsm({ ORDERS: ["orders.>"] }),
      60_000,
      false,
      Date.now,
      () => {
        calls++;
        return Promise.reject(new ApiQueueFullError());
      },
    );
    await expect(resolver.resolve(["orders.a"])).rejects.toBeInstanceOf(ApiQueueFullError);
    await expect(resolver.resolve(["orders.a"])).rejects.toBeInstanceOf(ApiQueueFullError);
    // Asked the limiter again: a refusal is the instance's state, not an answer about the subject.
    expect(calls).toBe(2);
  });
});
