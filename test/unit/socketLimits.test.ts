import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config";
import { openFileLimit, socketBounds } from "../../src/http/socketLimits";

describe("the public port's socket bounds", () => {
  it("derive the total from MAX_CONNECTIONS, within 90 % of the open-file limit", () => {
    expect(socketBounds(loadConfig({}), 1_048_576).maxSockets).toBe(12_500);
    expect(
      socketBounds(
        loadConfig({ MAX_CONNECTIONS: "100", MAX_CONNECTIONS_PER_CLIENT: "10" }),
        undefined,
      ).maxSockets,
    ).toBe(1_124);
    expect(socketBounds(loadConfig({}), 1_024).maxSockets).toBe(921);
  });

  it("warn when the open-file limit leaves fewer sockets than MAX_CONNECTIONS", () => {
    expect(socketBounds(loadConfig({}), 1_024).warnings).toEqual([
      expect.stringMatching(
        /open-file limit \(1024\) allows 921 sockets .* MAX_CONNECTIONS \(10000\)/,
      ),
    ]);
    expect(socketBounds(loadConfig({}), 20_000).warnings).toEqual([]);
  });

  it("take HTTP_MAX_SOCKETS as given, and warn when it is above 90 % of the open-file limit", () => {
    const c = loadConfig({ HTTP_MAX_SOCKETS: "19000", CLIENT_LIMIT_BY: "address" });
    expect(socketBounds(c, 20_000)).toEqual({
      maxSockets: 19_000,
      maxPerClient: 512,
      exempt: undefined,
      warnings: [expect.stringMatching(/HTTP_MAX_SOCKETS=19000 is above 90 % .*\(20000\)/)],
    });
    expect(socketBounds(c, undefined).warnings).toEqual([]);
  });

  it("derive the per-address bound from MAX_CONNECTIONS_PER_CLIENT with CLIENT_LIMIT_BY=address, and apply none otherwise", () => {
    const byAddress = { CLIENT_LIMIT_BY: "address" };
    expect(socketBounds(loadConfig(byAddress), undefined).maxPerClient).toBe(512);
    expect(
      socketBounds(loadConfig({ ...byAddress, MAX_CONNECTIONS_PER_CLIENT: "2" }), undefined)
        .maxPerClient,
    ).toBe(66);
    expect(
      socketBounds(loadConfig({ ...byAddress, HTTP_MAX_SOCKETS_PER_CLIENT: "300" }), undefined)
        .maxPerClient,
    ).toBe(300);
    // Behind a proxy every socket comes from the proxy; by default (auto) addresses are not
    // known to be clients: no per-address bound either way.
    expect(
      socketBounds(loadConfig({ ...byAddress, TRUST_PROXY: "true" }), undefined).maxPerClient,
    ).toBe(undefined);
    expect(socketBounds(loadConfig({}), undefined).maxPerClient).toBe(undefined);
  });

  it("exempt TRUSTED_PROXIES from the per-address bound", () => {
    const b = socketBounds(
      loadConfig({ CLIENT_LIMIT_BY: "address", TRUSTED_PROXIES: "10.0.0.0/8" }),
      undefined,
    );
    expect(b.exempt?.("10.1.2.3")).toBe(true);
    expect(b.exempt?.("::ffff:10.1.2.3")).toBe(true);
    expect(b.exempt?.("203.0.113.7")).toBe(false);
  });

  it("read the soft open-file limit from /proc/self/limits, or nothing when unknown", () => {
    const dir = mkdtempSync(join(tmpdir(), "limits-"));
    const file = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    const limits = (soft: string) =>
      "Limit                     Soft Limit           Hard Limit           Units     \n" +
      "Max processes             63498                63498                processes \n" +
      `Max open files            ${soft.padEnd(20)} 524288               files     \n`;
    expect(openFileLimit(file("a", limits("20000")))).toBe(20_000);
    expect(openFileLimit(file("b", limits("unlimited")))).toBeUndefined();
    expect(openFileLimit(join(dir, "missing"))).toBeUndefined();
    expect(typeof (openFileLimit() ?? 0)).toBe("number");
  });
});
