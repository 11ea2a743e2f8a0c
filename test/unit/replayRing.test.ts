import fc from "fast-check";
import {
  ReplayRing,
  RingBudget,
  evictable,
  pickRun,
  type RunView,
} from "../../src/broker/replayRing";

const frame = (seq: number, size = 10) => ({ seq, buf: Buffer.alloc(size, 0x61) });

describe("ReplayRing", () => {
  it("covers cursors from its start until frames are given up, then from the last one given up", () => {
    const r = new ReplayRing(100);
    expect(r.covers(100)).toBe(true);
    expect(r.covers(99)).toBe(false);
    r.push(frame(103));
    r.push(frame(107));
    expect(r.covers(105)).toBe(true);
    expect(r.covers(108)).toBe(false);
    expect(r.after(100).map((f) => f.seq)).toEqual([103, 107]);
    expect(r.after(103).map((f) => f.seq)).toEqual([107]);
    expect(r.after(100, 1).map((f) => f.seq)).toEqual([103]);
    expect([r.at(0)?.seq, r.at(1)?.seq, r.at(2), r.at(-1)]).toEqual([
      103,
      107,
      undefined,
      undefined,
    ]);
    r.shift();
    expect(r.at(0)?.seq).toBe(107); // counted from the oldest held
    expect(r.floor).toBe(103);
    expect(r.covers(102)).toBe(false);
    expect(r.covers(103)).toBe(true);
  });

  it("refuses a frame that does not follow the last one", () => {
    const r = new ReplayRing(10);
    r.push(frame(11));
    expect(() => r.push(frame(11))).toThrow(RangeError);
  });

  it("counts its bytes against the pod's budget and gives them all back when cleared", () => {
    const budget = new RingBudget(1_000);
    const a = new ReplayRing(0, budget);
    const b = new ReplayRing(0, budget);
    a.push(frame(1, 100));
    a.push(frame(2, 100));
    b.push(frame(5, 50));
    expect(budget.used).toBe(250);
    a.shift();
    expect(budget.used).toBe(150);
    a.clear();
    b.clear();
    expect(budget.used).toBe(0);
  });
});

describe("pickRun (the join rule)", () => {
  const run = (state: RunView["state"], floor: number, last: number): RunView => ({
    state,
    floor,
    last,
  });

  it("joins a reading run whose ring holds what follows the cursor", () => {
    const r = run("reading", 100, 200);
    expect(pickRun([r], 100, 50)).toBe(r);
    expect(pickRun([r], 150, 50)).toBe(r);
    expect(pickRun([r], 250, 50)).toBe(r); // the run gets there soon
    expect(pickRun([r], 99, 50)).toBeUndefined(); // fell out of the ring already
    expect(pickRun([r], 251, 50)).toBeUndefined(); // too far ahead to wait for
  });

  it("joins a done run only when its ring holds frames after the cursor, and never an ended one", () => {
    const done = run("done", 100, 200);
    expect(pickRun([done], 199, 50)).toBe(done);
    // At its end it has nothing left for the cursor: the window serves that session.
    expect(pickRun([done], 200, 50)).toBeUndefined();
    expect(pickRun([done], 201, 50)).toBeUndefined();
    expect(pickRun([run("ended", 100, 200)], 150, 50)).toBeUndefined();
  });

  it("joins a pending run within the distance either way, and prefers frames in memory", () => {
    const pending = run("pending", 1_000, 1_000);
    expect(pickRun([pending], 950, 50)).toBe(pending);
    expect(pickRun([pending], 1_050, 50)).toBe(pending);
    expect(pickRun([pending], 949, 50)).toBeUndefined();
    const reading = run("reading", 990, 1_010);
    expect(pickRun([pending, reading], 1_000, 50)).toBe(reading);
  });
});

describe("evictable (pacing)", () => {
  it("gives up only frames every member has taken, down to what it keeps", () => {
    const r = new ReplayRing(0);
    for (let s = 1; s <= 10; s++) r.push(frame(s));
    expect(evictable(r, 6, 10)).toBe(4);
    expect(evictable(r, 6, 2)).toBe(2); // the slowest member is at 2
    expect(evictable(r, 6, 0)).toBe(0); // it needs the oldest: the run must wait or drop it
    expect(evictable(r, 10, 10)).toBe(0); // within bounds already
  });

  /**
   * A run simulated with random message sequences, member cursors and reading speeds, and a small
   * ring. Whatever the schedule: the ring never exceeds its bound; every member that stays
   * receives exactly the messages after its cursor, in order; a member that falls out has
   * received a gap-free prefix of them and is positioned after its last one (so a replay of its
   * own continues exactly).
   */
  it("members receive exactly what follows their cursor, or a gap-free prefix when they fall out", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 120 }),
        fc.array(fc.record({ cursor: fc.integer({ min: 0, max: 400 }), speed: fc.nat(4) }), {
          minLength: 1,
          maxLength: 6,
        }),
        fc.integer({ min: 2, max: 16 }),
        fc.integer({ min: 1, max: 6 }),
        (seqs, specs, cap, patience) => {
          const msgs = [...seqs].sort((a, b) => a - b);
          const start = Math.min(...specs.map((m) => m.cursor));
          const ring = new ReplayRing(start);
          const members = specs.map((m) => ({
            ...m,
            pos: m.cursor,
            got: [] as number[],
            out: false,
          }));
          const toRead = msgs.filter((s) => s > start);
          let i = 0;
          let blocked = 0;
          for (let tick = 0; tick < 10_000; tick++) {
            const live = members.filter((m) => !m.out);
            if (live.length === 0) break;
            // The members' side: each takes up to `speed` frames (0 = its socket is full now).
            for (const m of live) {
              if (m.pos < ring.floor) throw new Error("a member was left behind the ring");
              for (const f of ring.after(m.pos, m.speed)) {
                m.got.push(f.seq);
                m.pos = f.seq;
              }
            }
            // The run's side: read the next message if there is room, else pace or drop.
            if (i >= toRead.length) {
              if (live.every((m) => m.pos >= ring.last)) break;
              if (live.every((m) => m.speed === 0)) break;
              continue;
            }
            if (ring.size >= cap) {
              const slowest = Math.min(...live.map((m) => m.pos));
              const n = evictable(ring, Math.floor((ring.size * 3) / 4), slowest);
              if (n > 0) {
                for (let k = 0; k < n; k++) ring.shift();
                blocked = 0;
              } else if (++blocked >= patience) {
                const need = (ring.oldest as { seq: number }).seq;
                for (const m of live) if (m.pos < need) m.out = true;
                blocked = 0;
              }
              continue;
            }
            ring.push(frame(toRead[i++] as number));
            expect(ring.size).toBeLessThanOrEqual(cap);
          }
          for (const m of members) {
            const want = msgs.filter((s) => s > m.cursor);
            if (m.out || m.speed === 0) {
              expect(m.got).toEqual(want.slice(0, m.got.length));
              expect(m.pos).toBe(m.got.at(-1) ?? m.cursor);
            } else if (i >= toRead.length) {
              expect(m.got).toEqual(want);
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
