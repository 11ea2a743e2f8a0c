import type { IncomingMessage } from "node:http";
import {
  clientAddress,
  isPublicAddress,
  parseCidrList,
  proxyTrust,
} from "../../src/http/clientAddress";

function req(peer: string, xff?: string | string[]): IncomingMessage {
  return {
    socket: { remoteAddress: peer },
    headers: xff === undefined ? {} : { "x-forwarded-for": xff },
  } as unknown as IncomingMessage;
}

const trust = (
  c: Partial<{ TRUST_PROXY: boolean; TRUSTED_HOPS: number; TRUSTED_PROXIES: string[] }>,
) => proxyTrust({ TRUST_PROXY: false, TRUSTED_HOPS: 1, TRUSTED_PROXIES: [], ...c });

describe("clientAddress", () => {
  it("is the socket's peer without proxy settings, whatever X-Forwarded-For says", () => {
    expect(clientAddress(req("10.0.0.9", "1.2.3.4"), trust({}))).toEqual({
      address: "10.0.0.9",
      viaProxy: false,
    });
  });

  it("with TRUST_PROXY takes the entry the proxy added (the last), not what the client forged", () => {
    const r = req("10.0.0.9", "1.2.3.4, 203.0.113.7");
    expect(clientAddress(r, trust({ TRUST_PROXY: true }))).toEqual({
      address: "203.0.113.7",
      viaProxy: true,
    });
  });

  it("with TRUSTED_HOPS=2 takes the entry two proxies from the right", () => {
    const r = req("10.0.0.9", "1.2.3.4, 203.0.113.7, 10.1.1.1");
    expect(clientAddress(r, trust({ TRUST_PROXY: true, TRUSTED_HOPS: 2 })).address).toBe(
      "203.0.113.7",
    );
    // Fewer entries than hops: the leftmost, what the first proxy saw.
    expect(
      clientAddress(req("10.0.0.9", "203.0.113.7"), trust({ TRUST_PROXY: true, TRUSTED_HOPS: 3 }))
        .address,
    ).toBe("203.0.113.7");
  });

  it("with TRUSTED_PROXIES believes only those peers and skips them from the right", () => {
    const t = trust({ TRUSTED_PROXIES: ["10.0.0.0/8", "fd00::/8"] });
    expect(clientAddress(req("10.0.0.9", "1.2.3.4, 203.0.113.7, 10.2.3.4"), t)).toEqual({
      address: "203.0.113.7",
      viaProxy: true,
    });
    // A peer outside the ranges is the client itself, even if it sends the header.
    expect(clientAddress(req("198.51.100.5", "203.0.113.7"), t)).toEqual({
      address: "198.51.100.5",
      viaProxy: false,
    });
    expect(clientAddress(req("fd00::1", "2001:db8::7"), t).address).toBe("2001:db8::7");
    expect(clientAddress(req("::ffff:10.0.0.9", "203.0.113.7"), t).address).toBe("203.0.113.7");
  });

  it("does not believe an entry that is not an IP address, nor a missing header", () => {
    const t = trust({ TRUST_PROXY: true });
    expect(clientAddress(req("10.0.0.9", "not-an-ip"), t)).toEqual({
      address: "10.0.0.9",
      viaProxy: false,
    });
    expect(clientAddress(req("10.0.0.9"), t).viaProxy).toBe(false);
  });

  it("joins a header sent more than once", () => {
    const r = req("10.0.0.9", ["1.2.3.4", "203.0.113.7"]);
    expect(clientAddress(r, trust({ TRUST_PROXY: true })).address).toBe("203.0.113.7");
  });
});

describe("parseCidrList", () => {
  it("accepts addresses and ranges, IPv4 and IPv6", () => {
    const r = parseCidrList(["10.0.0.0/8", "192.168.1.7", "fd00::/8", "::1"]);
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.value?.check("10.200.1.1", "ipv4")).toBe(true);
      expect(r.value?.check("11.0.0.1", "ipv4")).toBe(false);
      expect(r.value?.check("192.168.1.7", "ipv4")).toBe(true);
      expect(r.value?.check("fd12::3", "ipv6")).toBe(true);
    }
  });

  it.each(["10.0.0.0/33", "10.0.0/8", "example.com", "10.0.0.0/8/1", "fd00::/129", "10.0.0.0/x"])(
    "refuses %s with a message naming it",
    (entry) => {
      const r = parseCidrList([entry]);
      expect(r).toEqual({ ok: false, error: expect.stringContaining(entry) as string });
    },
  );
});

describe("isPublicAddress", () => {
  it("tells a globally routable client from the private peers of a cluster", () => {
    for (const a of ["203.0.113.7", "8.8.8.8", "2001:db8::1", "::ffff:198.51.100.2"])
      expect([a, isPublicAddress(a)]).toEqual([a, true]);
    for (const a of [
      "10.0.0.1",
      "172.16.5.4",
      "172.31.255.255",
      "192.168.1.1",
      "100.64.0.1",
      "127.0.0.1",
      "169.254.1.1",
      "::1",
      "fd12::1",
      "fe80::1",
      "::ffff:10.0.0.1",
      "not-an-ip",
    ])
      expect([a, isPublicAddress(a)]).toEqual([a, false]);
    expect(isPublicAddress("172.32.0.1")).toBe(true);
  });
});
