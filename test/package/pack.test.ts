/**
 * The package as a user gets it: `npm pack` of a compiled build, installed into an empty project
 * (production dependencies only), its daemon started from node_modules/.bin, and the client
 * library imported by name from JavaScript and type-checked from TypeScript.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { ROOT, freePort, startServingProcess } from "../helpers/daemon.ts";

const run = promisify(execFile);
const npm = (args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> =>
  run("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], { cwd, env: { ...process.env, NODE_OPTIONS: "" }, maxBuffer: 16 * 1024 * 1024 });

test("npm pack - the tarball installs into an empty project; its dsyncd serves and `import ... from \"dsync/client\"` works from JS and TS", async () => {
  const work = await mkdtemp(path.join(os.tmpdir(), "dsync-pack-"));
  const stage = path.join(work, "stage");
  const project = path.join(work, "project");
  let daemon: { stop: () => Promise<void> } | null = null;
  try {
    // A staging copy of what `files` in package.json ships, with a fresh build, so the test
    // never touches the checkout's own dist/.
    await mkdir(stage);
    for (const f of ["package.json", "README.md", "bin", "systemd"]) await cp(path.join(ROOT, f), path.join(stage, f), { recursive: true });
    await mkdir(path.join(stage, "protocol"));
    await cp(path.join(ROOT, "protocol", "PROTOCOL.md"), path.join(stage, "protocol", "PROTOCOL.md"));
    await run(process.execPath, [path.join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", path.join(ROOT, "tsconfig.build.json"), "--outDir", path.join(stage, "dist")], { cwd: ROOT });
    await writeFile(path.join(stage, "dist", ".built"), "");
    await npm(["pack", "--ignore-scripts", "--pack-destination", work], stage);
    const tarball = (await readdir(work)).find((f) => f.endsWith(".tgz"));
    assert.ok(tarball, "npm pack made a tarball");

    await mkdir(project);
    await writeFile(path.join(project, "package.json"), JSON.stringify({ name: "pack-test", private: true, type: "module" }));
    // Production dependencies only (no tsx, no typescript), from the npm cache when it has them.
    await npm(["install", "--omit=dev", "--prefer-offline", path.join(work, tarball)], project);
    const installed = await readdir(path.join(project, "node_modules"));
    assert.ok(!installed.includes("tsx") && !installed.includes("typescript"), "no dev dependency was installed");

    const [client, peer, http] = [await freePort(), await freePort(), await freePort()];
    const dataEnv = { ...process.env, NODE_OPTIONS: "", NODE_ID: "p0", API_PORT: String(client), NODE_PORT: String(peer), HTTP_PORT: String(http), DATA_DIR: path.join(work, "data"), LOG_LEVEL: "warn" };
    daemon = await startServingProcess(path.join(project, "node_modules", ".bin", "dsyncd"), [], dataEnv, http, project);

    await writeFile(
      path.join(project, "app.js"),
      `import { connect, LockClient, QueueClient } from "dsync/client";
const client = await connect({ nodes: [process.argv[2]] });
const locks = new LockClient(client);
const lock = await locks.acquire("pack/test");
console.log("token", lock.token);
const { id } = await new QueueClient(client).enqueue("pack-jobs", "hello");
console.log("enqueued", id);
await locks.release(lock);
await locks.close();
await client.close();
`,
    );
    const app = await run(process.execPath, ["app.js", `127.0.0.1:${client}`], { cwd: project, env: { ...process.env, NODE_OPTIONS: "" } });
    assert.match(app.stdout, /^token \d+$/m);
    assert.match(app.stdout, /^enqueued \d+$/m);

    // The types ship too: a TypeScript user gets the client's declarations by the package name.
    await writeFile(
      path.join(project, "typed.ts"),
      `import { connect, type ClientOptions, LockClient, PermissionDeniedError } from "dsync/client";
const opts: ClientOptions = { nodes: ["127.0.0.1:7001"], tls: { ca: "PEM" } };
export async function f(): Promise<number> {
  const c = await connect(opts);
  const lock = await new LockClient(c).acquire("x", { waitMs: 0 });
  return lock.token + (new PermissionDeniedError("no") instanceof Error ? 0 : 1);
}
// @ts-expect-error — a misspelt option is a type error
export const bad: ClientOptions = { nodez: [] };
`,
    );
    await writeFile(
      path.join(project, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { strict: true, noEmit: true, module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", skipLibCheck: false, typeRoots: [path.join(ROOT, "node_modules", "@types")], types: ["node"] }, files: ["typed.ts"] }),
    );
    await run(process.execPath, [path.join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", project], { cwd: project }).catch((err: { stdout?: string }) => {
      throw new Error(`the installed package's types do not check:\n${err.stdout ?? String(err)}`);
    });
    assert.match(await readFile(path.join(project, "node_modules", "dsync", "package.json"), "utf8"), /"exports"/);
  } finally {
    await daemon?.stop();
    await rm(work, { recursive: true, force: true });
  }
});
