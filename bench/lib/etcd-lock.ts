/**
 * A minimal client for etcd's server-side lock service (`v3lockpb.Lock`, what `etcdctl lock`
 * uses): gRPC through `@grpc/grpc-js` with the proto in ./v3lock.proto. `Lock` waits in etcd's
 * queue (ordered by create revision) until the caller's lease owns the lock and returns the
 * ownership key; `Unlock` deletes that key. Leases are granted and kept alive by the caller
 * (e.g. with the `etcd3` client's `lease()`), one per lock holder.
 */
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ROOT } from "./proc.ts";

export const V3LOCK_PROTO = path.join(ROOT, "bench/lib/v3lock.proto");

interface LockReply {
  readonly key: Buffer;
  readonly header?: { readonly revision?: string };
}

type Unary<Req, Res> = (req: Req, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => grpc.ClientUnaryCall;

interface V3LockStub extends grpc.Client {
  Lock: Unary<{ name: Buffer; lease: string }, LockReply>;
  Unlock: Unary<{ key: Buffer }, object>;
}

let ctor: grpc.ServiceClientConstructor | null = null;

function lockServiceCtor(): grpc.ServiceClientConstructor {
  if (ctor) return ctor;
  const def = protoLoader.loadSync(V3LOCK_PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { v3lockpb: { Lock: grpc.ServiceClientConstructor } };
  ctor = pkg.v3lockpb.Lock;
  return ctor;
}

/**
 * One gRPC channel to the lock service of a set of members. With several `hosts` the channel
 * balances calls round robin over them, as etcd's own Go client (clientv3) does over its endpoints.
 */
export class V3LockChannel {
  readonly #stub: V3LockStub;

  constructor(hosts: readonly string[]) {
    const Ctor = lockServiceCtor();
    const target = `ipv4:${hosts.join(",")}`;
    this.#stub = new Ctor(target, grpc.credentials.createInsecure(), {
      "grpc.service_config": JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
      // Each channel is its own connection set (no sharing of subchannels between channels).
      "grpc.use_local_subchannel_pool": 1,
    }) as unknown as V3LockStub;
  }

  /** Waits until the channel is connected (to at least one member). */
  ready(timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => this.#stub.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve())));
  }

  /** Acquires `name` for `lease` (a decimal lease ID); resolves with the ownership key. */
  lock(name: string, lease: string, timeoutMs: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.#stub.Lock({ name: Buffer.from(name), lease }, { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) reject(err);
        else if (!res?.key?.length) reject(new Error("v3lock Lock: reply without a key"));
        else resolve(res.key);
      });
    });
  }

  /** Releases the lock held through ownership key `key`. */
  unlock(key: Buffer, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#stub.Unlock({ key }, { deadline: Date.now() + timeoutMs }, (err) => (err ? reject(err) : resolve()));
    });
  }

  close(): void {
    this.#stub.close();
  }
}
