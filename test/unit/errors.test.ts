import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ERROR_STATUS } from "../../src/http/errors";

describe("the README's error table", () => {
  const readme = readFileSync(join(__dirname, "..", "..", "README.md"), "utf8");
  const rows = new Map(
    [...readme.matchAll(/^\| (\d{3}) +\| `([a-z_]+)` +\|/gm)].map((m) => [
      m[2] as string,
      Number(m[1]),
    ]),
  );

  it.each(Object.entries(ERROR_STATUS))("lists %s with its status %d", (code, status) => {
    expect(`${code}: ${rows.get(code)}`).toBe(`${code}: ${status}`);
  });

  it("lists no code the gateway does not answer with", () => {
    expect([...rows.keys()].filter((code) => !(code in ERROR_STATUS))).toEqual([]);
  });
});
