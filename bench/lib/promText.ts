import { request } from "node:http";

/** One scrape of a Prometheus text exposition: its samples, and how long the answer took. */
export interface PromScrape {
  /** `name` → samples of that name, each with its labels. */
  samples: Map<string, Array<{ labels: Record<string, string>; value: number }>>;
  /** From sending the request to the last byte of the answer, in ms. */
  ms: number;
}

/** GETs `url` (a `/metrics` endpoint) and parses the answer; throws on a status other than 200. */
export function scrape(url: string): Promise<PromScrape> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(url, { timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        if (res.statusCode !== 200) return reject(new Error(`${url}: ${res.statusCode}`));
        resolve({ samples: parse(Buffer.concat(chunks).toString()), ms: performance.now() - t0 });
      });
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error(`${url}: no answer within 10 s`)));
    req.end();
  });
}

/**
 * The value of sample `name` whose labels include all of `labels`; NaN when there is none (an
 * older gateway, or prom-client without that default metric).
 */
export function sample(s: PromScrape, name: string, labels: Record<string, string> = {}): number {
  const found = s.samples
    .get(name)
    ?.find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return found ? found.value : NaN;
}

// `name{a="x",b="y"} value` or `name value`; label values here never hold `"` or `,`.
const LINE = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/;
const LABEL = /(\w+)="([^"]*)"/g;

function parse(text: string): PromScrape["samples"] {
  const out: PromScrape["samples"] = new Map();
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? "").matchAll(LABEL)) labels[k as string] = v as string;
    const name = m[1] as string;
    const list = out.get(name) ?? [];
    list.push({ labels, value: Number(m[3]) });
    out.set(name, list);
  }
  return out;
}
