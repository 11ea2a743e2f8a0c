import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config";
import { fdBoundOf, openFileLimit, socketBounds } from "../../src/http/socketLimits";

describe("the public port's socket bounds", () => {
  it("derive the total from MAX_CONNECTIONS, within the open-file limit less 10 % (at most 1,024)", () => {
    expect(socketBounds(loadConfig({}), 1_048_576).maxSockets).toBe(12_500);
    expect(
      socketBounds(
        loadConfig({ MAX_CONNECTIONS: "100", MAX_CONNECTIONS_PER_CLIENT: "10" }),
        undefined,
      ).maxSockets,
    ).toBe(1_124);
    expect(socketBounds(loadConfig({}), 1_024).maxSockets).toBe(921);
    const many = loadConfig({ MAX_CONNECTIONS: "19000", MAX_CONNECTIONS_PER_CLIENT: "10" });
    expect(socketBounds(many, 20_000).maxSockets).toBe(18_976);
    expect([fdBoundOf(1_024), fdBoundOf(20_000), fdBoundOf(1_048_576)]).toEqual([
      921, 18_976, 1_047_552,
    ]);
  });

  it("warn when the open-file limit leaves fewer sockets than MAX_CONNECTIONS", () => {
    expect(socketBounds(loadConfig({}), 1_024).warnings).toEqual([
      expect.stringMatching(
        /open-file limit \(1024\) allows 921 sockets .* MAX_CONNECTIONS \(10000\)/,
      ),
    ]);
    expect(socketBounds(loadConfig({}), 20_000).warnings).toEqual([]);
  });

  it("take HTTP_MAX_SOCKETS as given, and warn when it is above what the open-file limit leaves room for", () => {
    const c = loadConfig({ HTTP_MAX_SOCKETS: "19000", CLIENT_LIMIT_BY: "address" });
    expect(socketBounds(c, 20_000)).toEqual({
      maxSockets: 19_000,
      maxPerClient: 512,
      exempt: undefined,
      warnings: [
        expect.stringMatching(/HTTP_MAX_SOCKETS=19000 is above the 18976 sockets .*\(20000\)/),
      ],
    });
    expect(socketBounds(c, undefined).warnings).toEqual([]);
  });

  it("derive the per-address bound from MAX_CONNECTIONS_PER_CLIENT, and apply none behind a proxy or when clients are not counted by address", () => {
    expect(socketBounds(loadConfig({}), undefined).maxPerClient).toBe(512);
    expect(
      socketBounds(loadConfig({ MAX_CONNECTIONS_PER_CLIENT: "2" }), undefined).maxPerClient,
    ).toBe(66);
    expect(
      socketBounds(loadConfig({ HTTP_MAX_SOCKETS_PER_CLIENT: "300" }), undefined).maxPerClient,
    ).toBe(300);
    // Behind a proxy every socket comes from the proxy.
    expect(socketBounds(loadConfig({ TRUST_PROXY: "true" }), undefined).maxPerClient).toBe(
      undefined,
    );
    const secret = { AUTH_JWT_SECRET: "0123456789abcdef0123456789abcdef" };
    for (const by of ["token", "none"])
      expect(
        socketBounds(loadConfig({ ...secret, CLIENT_LIMIT_BY: by }), undefined).maxPerClient,
      ).toBe(undefined);
  });

  it("exempt private peers in auto (an ingress or load balancer), not with CLIENT_LIMIT_BY=address", () => {
    const auto = socketBounds(loadConfig({}), undefined);
    for (const peer of ["10.1.2.3", "::ffff:10.1.2.3", "192.168.0.9", "127.0.0.1", "fd00::1"])
      expect([peer, auto.exempt?.(peer)]).toEqual([peer, true]);
    for (const peer of ["203.0.113.7", "2001:db8::1", "::ffff:198.51.100.2"])
      expect([peer, auto.exempt?.(peer)]).toEqual([peer, false]);
    const byAddress = socketBounds(loadConfig({ CLIENT_LIMIT_BY: "address" }), undefined);
    expect(byAddress.exempt).toBeUndefined();
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
