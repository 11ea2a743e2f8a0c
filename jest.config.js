// Three projects so `make test` runs everything while each level can run alone.
// TypeScript is transformed by SWC (no type-check here: `make lint` runs tsc).
const transform = { "^.+\\.ts$": ["@swc/jest", { jsc: { target: "es2023" } }] };
const common = { testEnvironment: "node", transform, moduleFileExtensions: ["ts", "js", "json"] };

/** @type {import('jest').Config} */
module.exports = {
  projects: [
    { ...common, displayName: "unit", testMatch: ["<rootDir>/test/unit/**/*.test.ts"] },
    {
      ...common,
      displayName: "integration",
      testMatch: ["<rootDir>/test/integration/**/*.test.ts"],
      testTimeout: 60_000,
    },
    {
      ...common,
      displayName: "browser",
      testMatch: ["<rootDir>/test/browser/**/*.test.ts"],
      testTimeout: 120_000,
    },
  ],
};
