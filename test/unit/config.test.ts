import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CONFIG_KEYS, ConfigError, loadConfig } from "../../src/config";

describe("loadConfig", () => {
  it("uses the documented defaults", () => {
    const c = loadConfig({});
    expect(c.PORT).toBe(8080);
    expect(c.ADMIN_PORT).toBe(9090);
    expect(c.NATS_URL).toEqual(["nats://127.0.0.1:4222"]);
    expect(c.HEARTBEAT_MS).toBe(15_000);
    expect(c.MAX_CONNECTIONS).toBe(10_000);
    expect(c.ALLOW_KV).toBe(false);
    expect(c.CORS_ORIGINS).toEqual([]);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("parses numbers, booleans and lists", () => {
    const c = loadConfig({
      PORT: "9000",
      NATS_URL: "nats://a:4222, nats://b:4222",
      ALLOW_WILDCARDS: "false",
      CORS_ORIGINS: "https://a.example,https://b.example",
    });
    expect(c.PORT).toBe(9000);
    expect(c.NATS_URL).toEqual(["nats://a:4222", "nats://b:4222"]);
    expect(c.ALLOW_WILDCARDS).toBe(false);
    expect(c.CORS_ORIGINS).toEqual(["https://a.example", "https://b.example"]);
  });

  it("treats empty values as unset", () => {
    expect(loadConfig({ PORT: "" }).PORT).toBe(8080);
  });

  it("names every bad variable in one error", () => {
    let err: unknown;
    try {
      loadConfig({ PORT: "eighty", HEARTBEAT_MS: "10", ALLOW_KV: "maybe", NATS_URL: "not a url" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    for (const name of ["PORT", "HEARTBEAT_MS", "ALLOW_KV", "NATS_URL"])
      expect(msg).toContain(name);
    expect((err as ConfigError).problems).toHaveLength(4);
    expect(msg).toMatch(/PORT="eighty": expected an integer/);
    expect(msg).toMatch(/HEARTBEAT_MS="10": expected at least 1000/);
  });

  it("checks settings against each other", () => {
    expect(() => loadConfig({ DRAIN_WINDOW_MS: "30000", SHUTDOWN_TIMEOUT_MS: "20000" })).toThrow(
      /DRAIN_WINDOW_MS=30000: must be less than SHUTDOWN_TIMEOUT_MS/,
    );
    expect(() => loadConfig({ EVENT_TYPE_HEADER: "bad header" })).toThrow(/EVENT_TYPE_HEADER/);
    expect(() => loadConfig({ PORT: "9090" })).toThrow(/ADMIN_PORT=9090: must differ from PORT/);
    expect(loadConfig({ PORT: "0", ADMIN_PORT: "0" }).ADMIN_PORT).toBe(0);
    expect(() => loadConfig({ FEED_HEARTBEAT_MS: "5000" })).toThrow(
      /FEED_WATCHDOG_MS=6000: must be at least 3 times FEED_HEARTBEAT_MS \(5000\)/,
    );
    expect(
      loadConfig({ FEED_HEARTBEAT_MS: "500", FEED_WATCHDOG_MS: "1500" }).FEED_WATCHDOG_MS,
    ).toBe(1500);
    expect(() => loadConfig({ NATS_TLS_CERT_FILE: "/c.pem" })).toThrow(/needs both/);
    expect(
      loadConfig({ NATS_TLS_CERT_FILE: "/c.pem", NATS_TLS_KEY_FILE: "/k.pem" }).NATS_TLS_KEY_FILE,
    ).toBe("/k.pem");
  });
});

describe("the README's settings table", () => {
  const readme = readFileSync(join(__dirname, "..", "..", "README.md"), "utf8");
  const rows = new Map(
    [...readme.matchAll(/^\| `([A-Z_]+)`(?:, `[A-Z_]+`)? +\| `?([^|`]*?)`? +\|/gm)].map((m) => [
      m[1],
      m[2],
    ]),
  );

  it.each(CONFIG_KEYS.map((k) => [k]))("documents %s", (key) => {
    expect(readme).toContain(`\`${key}\``);
  });

  it("states the defaults the code uses", () => {
    const defaults = loadConfig({});
    for (const key of CONFIG_KEYS) {
      const doc = rows.get(key);
      const value = (defaults as Record<string, unknown>)[key];
      if (doc === undefined || value === undefined || Array.isArray(value)) continue;
      expect(`${key}=${doc}`).toBe(`${key}=${String(value)}`);
    }
  });
});

describe("loadConfig - the public port's HTTP bounds", () => {
  it("bounds the query string: 8 KB and 64 parameters by default, room for every subject", () => {
    const c = loadConfig({});
    expect(c.HTTP_MAX_QUERY_BYTES).toBe(8_192);
    expect(c.HTTP_MAX_QUERY_PARAMS).toBe(64);
    expect(() => loadConfig({ MAX_SUBJECTS: "100" })).toThrow(
      /HTTP_MAX_QUERY_PARAMS=64: must be at least MAX_SUBJECTS \+ 4 \(104\)/,
    );
    expect(loadConfig({ MAX_SUBJECTS: "100", HTTP_MAX_QUERY_PARAMS: "104" }).MAX_SUBJECTS).toBe(
      100,
    );
    expect(() => loadConfig({ HTTP_MAX_QUERY_BYTES: "10" })).toThrow(/expected at least 256/);
  });
});

describe("loadConfig - the public port's sockets and timeouts", () => {
  it("derives the socket bounds by default (0) and bounds the timeouts", () => {
    const c = loadConfig({});
    expect(c.HTTP_MAX_SOCKETS).toBe(0);
    expect(c.HTTP_MAX_SOCKETS_PER_CLIENT).toBe(0);
    expect(c.HTTP_HEADERS_TIMEOUT_MS).toBe(10_000);
    expect(c.HTTP_REQUEST_TIMEOUT_MS).toBe(30_000);
    expect(c.HTTP_KEEP_ALIVE_TIMEOUT_MS).toBe(5_000);
    expect(() => loadConfig({ HTTP_HEADERS_TIMEOUT_MS: "0" })).toThrow(/expected at least 100/);
    expect(() => loadConfig({ HTTP_KEEP_ALIVE_TIMEOUT_MS: "0" })).toThrow(/expected at least 100/);
  });

  it("refuses socket bounds below the connection limits they must make room for", () => {
    expect(() => loadConfig({ HTTP_MAX_SOCKETS: "5000" })).toThrow(
      /HTTP_MAX_SOCKETS=5000: must be 0 \(derived\) or at least MAX_CONNECTIONS \(10000\)/,
    );
    expect(() => loadConfig({ HTTP_MAX_SOCKETS_PER_CLIENT: "100" })).toThrow(
      /HTTP_MAX_SOCKETS_PER_CLIENT=100: must be 0 \(derived\) or at least MAX_CONNECTIONS_PER_CLIENT \(256\)/,
    );
    expect(loadConfig({ HTTP_MAX_SOCKETS: "10000" }).HTTP_MAX_SOCKETS).toBe(10_000);
  });

  it("refuses a headers timeout longer than the request timeout", () => {
    expect(() =>
      loadConfig({ HTTP_HEADERS_TIMEOUT_MS: "40000", HTTP_REQUEST_TIMEOUT_MS: "30000" }),
    ).toThrow(/HTTP_HEADERS_TIMEOUT_MS=40000: must not exceed HTTP_REQUEST_TIMEOUT_MS \(30000\)/);
  });
});
