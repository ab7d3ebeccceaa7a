// Lint: typescript-eslint's recommended rules, plus the layer boundaries the architecture rests
// on (a pure Raft core and pure state machines, a client that never reaches into the daemon, a
// wire protocol shared by both and depending on neither).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

/** `no-restricted-imports` patterns that keep a folder off the layers it must not reach. */
const off = (...groups) => ({ "no-restricted-imports": ["error", { patterns: groups.map((g) => ({ group: g.paths, message: g.why })) }] });

const io = {
  // The StateMachine interface lives with the host that runs machines; importing its type is fine.
  paths: ["node:*", "**/server/**", "**/config/**", "**/host/**", "!**/host/state-machine.ts", "**/transport/**", "**/storage/**", "**/client/**"],
  why: "deterministic code does no I/O: the simulator replays it from a seed",
};

export default tseslint.config(
  { ignores: ["node_modules/**", "dist/**", "coverage/**", ".data/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: "readonly", console: "readonly", Buffer: "readonly", setTimeout: "readonly", clearTimeout: "readonly", setInterval: "readonly", clearInterval: "readonly", setImmediate: "readonly", performance: "readonly", URL: "readonly", TextEncoder: "readonly", TextDecoder: "readonly", fetch: "readonly", AbortController: "readonly", AbortSignal: "readonly", queueMicrotask: "readonly", structuredClone: "readonly" } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
      "no-constant-condition": ["error", { checkLoops: false }],
    },
  },
  { files: ["src/raft/**/*.ts"], rules: off({ paths: ["node:*", "../*", "!./*"], why: "the Raft core is pure and imports only itself" }) },
  { files: ["src/services/*/machine/**/*.ts", "src/services/ring/**/*.ts", "src/services/shared/**/*.ts", "src/services/command-codec.ts"], rules: off(io) },
  { files: ["src/services/**/*.ts"], ignores: ["src/services/*/machine/**", "src/services/ring/**", "src/services/shared/**", "src/services/command-codec.ts"], rules: off({ paths: ["**/server/**", "**/config/**", "**/client/**"], why: "a service runs on the host and knows nothing of the node that wires it up" }) },
  { files: ["src/host/**/*.ts"], rules: off({ paths: ["**/server/**", "**/config/**", "**/services/**", "!**/services/command-codec.ts", "**/client/**"], why: "the host runs services' machines and handlers without knowing any of them" }) },
  { files: ["protocol/**/*.ts"], rules: off({ paths: ["**/src/**"], why: "the wire protocol is shared by client and daemon and depends on neither" }) },
  { files: ["src/client/**/*.ts"], rules: off({ paths: ["**/server/**", "**/config/**", "**/services/**", "**/storage/**", "**/raft/**"], why: "the client library speaks the protocol only; it never reaches into the daemon" }) },
  { files: ["src/storage/**/*.ts", "src/transport/**/*.ts"], rules: off({ paths: ["**/server/**", "**/config/**", "**/services/**", "**/client/**"], why: "storage and transport are layers below the node and its services" }) },
);
