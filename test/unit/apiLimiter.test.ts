import { ApiLimiter, ApiQueueFullError } from "../../src/broker/apiLimiter";

/** A call that settles when the test says so. */
function deferred<T>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: Error) => void;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("ApiLimiter", () => {
  it("runs at most maxConcurrent calls at once, the others in FIFO order", async () => {
    const seen: Array<[number, number]> = [];
    const l = new ApiLimiter(2, 10, (a, q) => seen.push([a, q]));
    const calls = [0, 1, 2, 3].map(() => deferred<number>());
    const started: number[] = [];
    const results = calls.map((d, i) =>
      l.run(() => {
        started.push(i);
        return d.promise;
      }),
    );
    await tick();
    expect(started).toEqual([0, 1]);
    expect(l.queued).toBe(2);
    calls[1]?.resolve(1);
    await tick();
    expect(started).toEqual([0, 1, 2]);
    calls[0]?.reject(new Error("JetStream said no"));
    await expect(results[0]).rejects.toThrow("JetStream said no");
    await tick();
    // A failed call gives its slot back like a successful one.
    expect(started).toEqual([0, 1, 2, 3]);
    calls[2]?.resolve(2);
    calls[3]?.resolve(3);
    await expect(Promise.all(results.slice(1))).resolves.toEqual([1, 2, 3]);
    expect(l.running).toBe(0);
    expect(Math.max(...seen.map(([a]) => a))).toBe(2);
  });

  it("refuses a call beyond the queue bound, and says so", async () => {
    let refused = 0;
    const l = new ApiLimiter(1, 1, undefined, () => refused++);
    const hold = deferred<void>();
    const first = l.run(() => hold.promise);
    const second = l.run(() => Promise.resolve("queued"));
    await expect(l.run(() => Promise.resolve("too many"))).rejects.toBeInstanceOf(
      ApiQueueFullError,
    );
    expect(refused).toBe(1);
    hold.resolve();
    await first;
    await expect(second).resolves.toBe("queued");
  });

  it("drops a queued call whose client went away, without running it", async () => {
    const l = new ApiLimiter(1, 5);
    const hold = deferred<void>();
    const first = l.run(() => hold.promise);
    const hooks: Array<() => void> = [];
    const client = { whenClosed: (fn: () => void) => (hooks.push(fn), () => undefined) };
    let ran = false;
    const dropped = l.for(client)(() => {
      ran = true;
      return Promise.resolve();
    });
    expect(l.queued).toBe(1);
    hooks.forEach((h) => h());
    await expect(dropped).rejects.toThrow(/closed while waiting/);
    hold.resolve();
    await first;
    expect(ran).toBe(false);
    expect(l.running).toBe(0);
  });

  it("refuses a request only at its first call: later calls and clean-ups wait their turn", async () => {
    const l = new ApiLimiter(1, 1);
    const hold = deferred<void>();
    const other = l.run(() => hold.promise);
    const client = { whenClosed: () => () => undefined };
    const calls = l.for(client);
    const firstCall = calls(() => Promise.resolve("state")); // queued: the queue is now full
    await expect(l.run(() => Promise.resolve("refused"))).rejects.toBeInstanceOf(ApiQueueFullError);
    hold.resolve();
    await other;
    await expect(firstCall).resolves.toBe("state");
    // Admitted now: the queue being full again does not refuse its next call.
    const hold2 = deferred<void>();
    const busy = l.run(() => hold2.promise);
    const waiting = l.run(() => Promise.resolve("fills the queue"));
    const probe = calls(() => Promise.resolve("probe"));
    const cleanup = calls(() => Promise.resolve("delete"), { cleanup: true });
    expect(l.queued).toBe(3);
    hold2.resolve();
    await expect(Promise.all([busy, waiting, probe, cleanup])).resolves.toEqual([
      undefined,
      "fills the queue",
      "probe",
      "delete",
    ]);
  });

  it("still runs a clean-up whose client has gone away", async () => {
    const l = new ApiLimiter(1, 0);
    const hold = deferred<void>();
    const other = l.run(() => hold.promise);
    const closed = { whenClosed: (fn: () => void) => (fn(), () => undefined) };
    let ran = false;
    const cleanup = l.for(closed)(
      () => {
        ran = true;
        return Promise.resolve();
      },
      { cleanup: true },
    );
    hold.resolve();
    await other;
    await cleanup;
    expect(ran).toBe(true);
  });
});
