import type * as Jose from "jose" with { "resolution-mode": "import" };

export type { Jose };

let josePromise: Promise<typeof Jose> | undefined;

/**
 * jose, loaded once. It is ESM only and this project compiles to CommonJS, so it comes through
 * `import()`: a static import would become a `require` that TypeScript refuses.
 */
export function loadJose(): Promise<typeof Jose> {
  return (josePromise ??= import("jose"));
}
