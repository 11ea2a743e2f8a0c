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
