import { HEARTBEAT_SLICE, SessionRegistry } from "../../src/sse/sessionRegistry";
import type { Session } from "../../src/sse/session";

/** What the registry uses of a session, recorded. */
class FakeSession {
  closed = false;
  closedAt: number | undefined;
  retry: number | undefined;
  closes = 0;
  writes: Buffer[] = [];
  private hooks: Array<() => void> = [];
  close(_reason: string, retryMs?: number): void {
    this.closes++;
    this.closed = true;
    this.closedAt = performance.now();
    this.retry = retryMs;
    for (const h of this.hooks.splice(0)) h();
  }
  /** The client went away by itself. */
  leave(): void {
    this.closed = true;
    for (const h of this.hooks.splice(0)) h();
  }
  whenClosed(fn: () => void): () => void {
    if (this.closed) fn();
    else this.hooks.push(fn);
    return () => undefined;
  }
  control(buf: Buffer): void {
    this.writes.push(buf);
  }
}

function registryOf(n: number): { registry: SessionRegistry; fakes: FakeSession[] } {
  const registry = new SessionRegistry(100_000, 100_000);
  const fakes = Array.from({ length: n }, () => new FakeSession());
  for (const f of fakes) registry.add(f as unknown as Session);
  return { registry, fakes };
}

describe("SessionRegistry.drain", () => {
  it("closes every session once, spread over the window, each with a jittered retry", async () => {
    const { registry, fakes } = registryOf(200);
    const t0 = performance.now();
    await registry.drain(400, 1_000);
    const elapsed = performance.now() - t0;
    expect(fakes.every((f) => f.closes === 1)).toBe(true);
    expect(elapsed).toBeGreaterThanOrEqual(390);
    const times = fakes.map((f) => (f.closedAt as number) - t0).sort((a, b) => a - b);
    // Spread: a quarter closed in each quarter of the window, give or take a tick or two.
    const inFirstHalf = times.filter((t) => t < 200).length;
    expect(inFirstHalf).toBeGreaterThan(60);
    expect(inFirstHalf).toBeLessThan(140);
    for (const f of fakes) {
      expect(f.retry).toBeGreaterThanOrEqual(500);
      expect(f.retry).toBeLessThan(1_500);
    }
  });

  it("closes in a random order, not the order sessions were added", async () => {
    const { registry, fakes } = registryOf(100);
    await registry.drain(100, 1_000);
    const order = [...fakes.keys()].sort(
      (a, b) => (fakes[a]?.closedAt as number) - (fakes[b]?.closedAt as number),
    );
    expect(order).not.toEqual([...fakes.keys()]);
  });

  it("with a window of 0 closes all at once, and skips sessions already closed", async () => {
    const { registry, fakes } = registryOf(50);
    (fakes[3] as FakeSession).closed = true;
    const done = registry.drain(0, 1_000);
    // Synchronously, before the promise resolves.
    expect(fakes.filter((f) => f.closes === 1)).toHaveLength(49);
    await done;
    expect((fakes[3] as FakeSession).closes).toBe(0);
  });

  it("closes none before its moment: the k-th of n at a random point of the k-th n-th of the window", async () => {
    const { registry, fakes } = registryOf(4);
    const t0 = performance.now();
    // rnd 0.5: the slots' midpoints, 125, 375, 625 and 875 ms (and jitter 1.0 x retry).
    const done = registry.drain(1_000, 1_000, () => 0.5);
    await new Promise((r) => setTimeout(r, 80));
    expect(fakes.filter((f) => f.closes > 0)).toHaveLength(0);
    await done;
    const times = fakes.map((f) => (f.closedAt as number) - t0).sort((a, b) => a - b);
    [125, 375, 625, 875].forEach((at, k) => {
      expect(times[k]).toBeGreaterThanOrEqual(at - 1);
      expect(times[k]).toBeLessThan(at + 100);
    });
  });

  it("ends early when the clients have all left by themselves", async () => {
    const { registry, fakes } = registryOf(3);
    const t0 = performance.now();
    const done = registry.drain(60_000, 1_000, () => 0.5); // slots at 10, 30 and 50 s
    setTimeout(() => fakes.forEach((f) => f.leave()), 50);
    await done;
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(fakes.map((f) => f.closes)).toEqual([0, 0, 0]);
  });

  it("resolves at once with no session", async () => {
    await expect(new SessionRegistry(1, 1).drain(10_000, 1_000)).resolves.toBeUndefined();
  });
});

describe("SessionRegistry heartbeat", () => {
  it("writes a ping to every session each interval, a slice per turn of the event loop", async () => {
    const n = HEARTBEAT_SLICE * 2 + 500;
    const { registry, fakes } = registryOf(n);
    // Counted when the turn that wrote the first ping ends (microtasks run before any
    // setImmediate): that turn wrote one slice.
    let inFirstTurn: number | undefined;
    const first = fakes[0] as FakeSession;
    first.control = (buf: Buffer) => {
      first.writes.push(buf);
      queueMicrotask(() => {
        inFirstTurn = fakes.filter((f) => f.writes.length === 1).length;
      });
    };
    registry.startHeartbeat(200);
    try {
      await new Promise((r) => setTimeout(r, 300));
      expect(inFirstTurn).toBe(HEARTBEAT_SLICE);
      expect(fakes.every((f) => f.writes.length === 1)).toBe(true);
      expect(first.writes[0]?.toString()).toBe(": ping\n\n");
    } finally {
      registry.stopHeartbeat();
    }
  });
});
