import { ReplayLimiter, ReplayQueueFullError } from "../../src/broker/replayLimiter";

describe("ReplayLimiter", () => {
  it("runs at most maxConcurrent at once and hands slots on in FIFO order", async () => {
    const seen: Array<[number, number]> = [];
    const l = new ReplayLimiter(2, 10, (a, q) => seen.push([a, q]));
    const r1 = await l.acquire();
    const r2 = await l.acquire();
    const order: number[] = [];
    const p3 = l.acquire().then((r) => (order.push(3), r));
    const p4 = l.acquire().then((r) => (order.push(4), r));
    expect(l.running).toBe(2);
    expect(l.queued).toBe(2);
    r1();
    const r3 = await p3;
    expect(order).toEqual([3]);
    r2();
    const r4 = await p4;
    expect(order).toEqual([3, 4]);
    r3();
    r4();
    expect(l.running).toBe(0);
    expect(Math.max(...seen.map(([a]) => a))).toBe(2);
  });

  it("refuses beyond the queue bound", async () => {
    const l = new ReplayLimiter(1, 1);
    await l.acquire();
    void l.acquire();
    await expect(l.acquire()).rejects.toBeInstanceOf(ReplayQueueFullError);
  });

  it("releases twice as once", async () => {
    const l = new ReplayLimiter(1, 1);
    const r = await l.acquire();
    r();
    r();
    expect(l.running).toBe(0);
  });

  it("drops a waiter that closes while queued", async () => {
    const l = new ReplayLimiter(1, 5);
    const r1 = await l.acquire();
    const hooks: Array<() => void> = [];
    const waiter = { whenClosed: (fn: () => void) => (hooks.push(fn), () => undefined) };
    const waiting = l.acquire(waiter);
    expect(l.queued).toBe(1);
    hooks.forEach((h) => h());
    await expect(waiting).rejects.toThrow(/closed while waiting/);
    expect(l.queued).toBe(0);
    r1();
    expect(l.running).toBe(0);
  });
});

describe("ReplayLimiter per client address", () => {
  it("gives one address at most maxPerClient slots; the rest go to other addresses first", async () => {
    let limited = 0;
    const l = new ReplayLimiter(4, 10, undefined, {
      maxPerClient: 2,
      onClientLimited: () => limited++,
    });
    const a1 = await l.acquire(undefined, "a");
    await l.acquire(undefined, "a");
    const order: string[] = [];
    const a3 = l.acquire(undefined, "a").then((r) => (order.push("a3"), r));
    // A slot is free, but not for "a": its third replay waits, and says why.
    expect(l.running).toBe(2);
    expect(l.queued).toBe(1);
    expect(limited).toBe(1);
    // Other addresses, arriving later, are not stuck behind it.
    await l.acquire(undefined, "b");
    const c1 = await l.acquire(undefined, "c");
    expect(l.running).toBe(4);
    const b2 = l.acquire(undefined, "b").then((r) => (order.push("b2"), r));
    expect(l.queued).toBe(2);
    // A slot given back by "c" passes over "a3" (its address holds its share) to "b2".
    c1();
    await b2;
    expect(order).toEqual(["b2"]);
    // Once "a" gives one back, "a3" takes it.
    a1();
    await a3;
    expect(order).toEqual(["b2", "a3"]);
    expect(l.running).toBe(4);
    expect(l.queued).toBe(0);
    expect(limited).toBe(1);
  });

  it("counts requests without an address against the total only", async () => {
    const l = new ReplayLimiter(3, 0, undefined, { maxPerClient: 1 });
    await l.acquire();
    await l.acquire();
    await l.acquire(undefined, "a");
    expect(l.running).toBe(3);
    await expect(l.acquire(undefined, "b")).rejects.toBeInstanceOf(ReplayQueueFullError);
  });

  it("frees an address's share when its slots are given back", async () => {
    const l = new ReplayLimiter(2, 5, undefined, { maxPerClient: 1 });
    const r = await l.acquire(undefined, "a");
    r();
    r();
    const again = await l.acquire(undefined, "a");
    expect(l.running).toBe(1);
    again();
    expect(l.running).toBe(0);
  });

  it("carries the pod's API limiter and the stall timeout", () => {
    const l = new ReplayLimiter(1, 1, undefined, { stallMs: 250 });
    expect(l.stallMs).toBe(250);
    expect(l.api.running).toBe(0);
  });
});
