// Three projects so `make test` runs everything while each level can run alone.
// TypeScript is transformed by SWC (no type-check here: `make lint` runs tsc).
const transform = { "^.+\\.ts$": ["@swc/jest", { jsc: { target: "es2023" } }] };
const common = { testEnvironment: "node", transform, moduleFileExtensions: ["ts", "js", "json"] };

/** @type {import('jest').Config} */
module.exports = {
  // Per-project testTimeout is not honoured by Jest; the integration and browser suites talk to
  // real servers, so the bound is set for all (unit tests finish in milliseconds anyway).
  testTimeout: 60_000,
  projects: [
    { ...common, displayName: "unit", testMatch: ["<rootDir>/test/unit/**/*.test.ts"] },
    {
      ...common,
      displayName: "integration",
      testMatch: ["<rootDir>/test/integration/**/*.test.ts"],
    },
    {
      ...common,
      displayName: "browser",
      testMatch: ["<rootDir>/test/browser/**/*.test.ts"],
    },
  ],
};
