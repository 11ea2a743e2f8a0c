import { RecentWindow, WindowBudget } from "../../src/broker/window";

const frame = (seq: number, size = 10) => ({ seq, buf: Buffer.alloc(size, 0x61) });

describe("RecentWindow", () => {
  it("covers cursors from its floor to its last sequence", () => {
    const w = new RecentWindow(10, 1_000);
    w.reset(100);
    expect(w.covers(100)).toBe(true);
    expect(w.covers(99)).toBe(false);
    w.push(frame(103));
    w.push(frame(107));
    expect(w.covers(105)).toBe(true);
    expect(w.covers(107)).toBe(true);
    expect(w.covers(108)).toBe(false);
    expect(w.after(103).map((f) => f.seq)).toEqual([107]);
    expect(w.after(100).map((f) => f.seq)).toEqual([103, 107]);
    expect(w.after(107)).toEqual([]);
  });

  it("evicts by count and raises its floor to the evicted sequence", () => {
    const w = new RecentWindow(3, 1_000);
    w.reset(0);
    for (let s = 1; s <= 5; s++) w.push(frame(s));
    expect(w.size).toBe(3);
    expect(w.floor).toBe(2);
    expect(w.covers(1)).toBe(false);
    expect(w.after(2).map((f) => f.seq)).toEqual([3, 4, 5]);
  });

  it("evicts by bytes", () => {
    const w = new RecentWindow(100, 25);
    w.reset(0);
    for (let s = 1; s <= 5; s++) w.push(frame(s, 10));
    expect(w.bytes).toBeLessThanOrEqual(25);
    expect(w.size).toBe(2);
    expect(w.floor).toBe(3);
  });

  it("keeps nothing with a zero bound, yet still tracks the last sequence", () => {
    const w = new RecentWindow(0, 0);
    w.reset(5);
    w.push(frame(6));
    expect(w.size).toBe(0);
    expect(w.covers(6)).toBe(true); // everything after 6 is still to come live
    expect(w.covers(5)).toBe(false);
  });

  it("answers last N when it holds N frames, or the whole stream", () => {
    const w = new RecentWindow(10, 1_000);
    w.reset(0);
    for (const s of [2, 4, 6, 8]) w.push(frame(s));
    expect(w.cursorForLast(2)).toBe(5);
    expect(w.cursorForLast(10)).toBe(0); // the window holds all since the stream began
    w.reset(50);
    w.push(frame(51));
    expect(w.cursorForLast(2)).toBeUndefined();
  });

  it("stays correct across compaction of its array", () => {
    const w = new RecentWindow(5, 1_000_000);
    w.reset(0);
    for (let s = 1; s <= 5000; s++) w.push(frame(s, 1));
    expect(w.size).toBe(5);
    expect(w.after(4997).map((f) => f.seq)).toEqual([4998, 4999, 5000]);
  });
});

describe("RecentWindow and what the stream no longer holds", () => {
  it("dropBefore - forgets frames below the stream's first sequence and stops covering older cursors", () => {
    const w = new RecentWindow(10, 1_000);
    w.reset(0);
    for (const s of [2, 4, 6, 8]) w.push(frame(s));
    expect(w.dropBefore(5)).toBe(2);
    expect(w.after(0).map((f) => f.seq)).toEqual([6, 8]);
    expect(w.covers(4)).toBe(true); // nothing between 4 and 5 is missing
    expect(w.covers(3)).toBe(false);
    expect(w.bytes).toBe(20);
    expect(w.dropBefore(3)).toBe(0); // the first sequence never moves back
    expect(w.covers(4)).toBe(true);
  });

  it("dropBefore - after a full purge covers no cursor below the stream's end, yet serves what follows", () => {
    const w = new RecentWindow(10, 1_000);
    w.reset(0);
    for (const s of [1, 2, 3]) w.push(frame(s));
    w.dropBefore(4); // purged: first = last + 1
    expect(w.size).toBe(0);
    expect(w.covers(2)).toBe(false);
    expect(w.covers(3)).toBe(true);
    w.push(frame(4));
    expect(w.after(3).map((f) => f.seq)).toEqual([4]);
  });

  it("dropBefore - past the window's end covers nothing it has seen: what was removed might have matched", () => {
    const w = new RecentWindow(10, 1_000);
    w.reset(0);
    w.push(frame(5));
    w.dropBefore(9);
    expect(w.covers(5)).toBe(false);
    expect(w.covers(8)).toBe(false);
    w.push(frame(10));
    expect(w.covers(8)).toBe(true);
    expect(w.after(8).map((f) => f.seq)).toEqual([10]);
  });

  it("remove - takes out erased messages and keeps covering the same cursors", () => {
    const budget = new WindowBudget(1_000);
    const w = new RecentWindow(10, 1_000, budget);
    w.reset(0);
    for (let s = 1; s <= 5; s++) w.push(frame(s));
    expect(w.remove(new Set([2, 4, 99]))).toBe(2);
    expect(w.after(0).map((f) => f.seq)).toEqual([1, 3, 5]);
    expect(w.covers(0)).toBe(true);
    expect(w.bytes).toBe(30);
    expect(budget.used).toBe(30);
    expect(w.cursorForLast(2)).toBe(2); // the last two that exist: 3 and 5
  });

  it("clear - drops everything and covers only its last sequence", () => {
    const budget = new WindowBudget(1_000);
    const w = new RecentWindow(10, 1_000, budget);
    w.reset(10);
    for (let s = 11; s <= 15; s++) w.push(frame(s));
    expect(w.clear()).toBe(5);
    expect(budget.used).toBe(0);
    expect(w.covers(14)).toBe(false);
    expect(w.covers(15)).toBe(true);
  });
});

describe("WindowBudget", () => {
  it("bounds the bytes of all windows together", () => {
    const budget = new WindowBudget(100);
    const a = new RecentWindow(1_000, 1_000, budget);
    const b = new RecentWindow(1_000, 1_000, budget);
    a.reset(0);
    b.reset(0);
    for (let s = 1; s <= 8; s++) a.push(frame(s, 10));
    for (let s = 1; s <= 5; s++) b.push(frame(s, 10));
    expect(budget.used).toBeLessThanOrEqual(100);
    expect(budget.used).toBe(a.bytes + b.bytes);
    a.reset(8); // a feed closing gives its bytes back
    expect(budget.used).toBe(b.bytes);
  });
});
