import { ExpiryWheel } from "../../src/auth/expiryWheel";

describe("ExpiryWheel", () => {
  let now = 0;
  const clock = () => now;

  it("ends each item once its time has come, never before", () => {
    const ended: string[] = [];
    const wheel = new ExpiryWheel<string>((s) => ended.push(s), 1_000, clock);
    now = 10_000;
    wheel.add("a", 11_500); // due in the 12 s bucket: never before 11.5 s
    wheel.add("b", 12_000);
    wheel.add("c", 15_000);
    now = 11_999;
    wheel.tick();
    expect(ended).toEqual([]);
    now = 12_000;
    wheel.tick();
    expect(ended.sort()).toEqual(["a", "b"]);
    now = 20_000;
    wheel.tick();
    expect(ended.sort()).toEqual(["a", "b", "c"]);
    wheel.tick();
    expect(ended).toHaveLength(3);
    expect(wheel.size).toBe(0);
    wheel.stop();
  });

  it("forgets a removed item and holds no timer once empty", () => {
    const ended: string[] = [];
    const wheel = new ExpiryWheel<string>((s) => ended.push(s), 1_000, clock);
    now = 0;
    wheel.add("a", 2_000);
    expect(wheel.size).toBe(1);
    wheel.remove("a", 2_000);
    expect(wheel.size).toBe(0);
    now = 5_000;
    wheel.tick();
    expect(ended).toEqual([]);
    // No interval left running: Jest would report an open handle otherwise.
    wheel.stop();
  });

  it("runs its own timer: an item ends without anyone calling tick", async () => {
    const ended: string[] = [];
    const wheel = new ExpiryWheel<string>((s) => ended.push(s), 20);
    wheel.add("a", Date.now() + 30);
    await new Promise((r) => setTimeout(r, 150));
    expect(ended).toEqual(["a"]);
    wheel.stop();
  });
});
