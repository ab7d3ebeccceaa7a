/**
 * TLS for the client and peer ports: certificates from PEM files (re-read on SIGHUP without
 * dropping connections), TLS 1.2 or newer, node identities checked against certificate names,
 * and errors a newcomer can act on.
 */
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import tls, { type PeerCertificate } from "node:tls";
import { Op, encodeEnvelope, encodeFrame, type DsyncError } from "../../protocol/index.ts";

/** The PEM files of one node (or client): its certificate chain, its key, the CA it trusts. */
export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca: string | null;
}

export const TLS_MIN_VERSION = "TLSv1.2";
/** The first byte of every TLS record that opens a connection (a handshake record). */
const TLS_HANDSHAKE_BYTE = 0x16;
const HANDSHAKE_TIMEOUT_MS = 10_000;

interface Pem {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | null;
}

/** A node's TLS material, kept current: {@link reload} swaps it for new connections. */
export class TlsMaterial {
  readonly files: TlsFiles;
  #pem: Pem;
  readonly #listeners: (() => void)[] = [];

  constructor(files: TlsFiles) {
    this.files = files;
    this.#pem = checked(readPem(files));
  }

  /** Re-reads the files. @throws Error naming the file at fault (the old material stays in use). */
  reload(): void {
    this.#pem = checked(readPem(this.files));
    for (const fn of this.#listeners) fn();
  }

  /** Runs `fn` after every successful reload. */
  onReload(fn: () => void): void {
    this.#listeners.push(fn);
  }

  /** Options for a tls.Server (accepting side) or tls.connect (dialing side) with this material. */
  serverOptions(): tls.SecureContextOptions {
    return { cert: this.#pem.cert, key: this.#pem.key, ...(this.#pem.ca && { ca: this.#pem.ca }), minVersion: TLS_MIN_VERSION };
  }

  connectOptions(): tls.ConnectionOptions {
    return this.serverOptions();
  }
}

function readPem(f: TlsFiles): Pem {
  const read = (what: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`cannot read the TLS ${what} ${file}: ${(err as Error).message}`, { cause: err });
    }
  };
  return { cert: read("certificate (TLS_CERT)", f.cert), key: read("key (TLS_KEY)", f.key), ca: f.ca === null ? null : read("CA (TLS_CA)", f.ca) };
}

/** `p`, once node:tls accepts it (a key that does not match the certificate fails here, at start). */
function checked(p: Pem): Pem {
  try {
    tls.createSecureContext({ cert: p.cert, key: p.key, ...(p.ca && { ca: p.ca }), minVersion: TLS_MIN_VERSION });
  } catch (err) {
    throw new Error(`the TLS certificate and key do not form a usable pair: ${(err as Error).message}`, { cause: err });
  }
  return p;
}

/** The names a certificate vouches for: its subject CN and its DNS and URI alternative names. */
export function certificateNames(cert: PeerCertificate): string[] {
  const names: string[] = [];
  const cn = cert.subject?.CN;
  if (typeof cn === "string") names.push(cn);
  else if (Array.isArray(cn)) names.push(...(cn as string[]));
  for (const part of (cert.subjectaltname ?? "").split(",")) {
    const m = /^\s*(DNS|URI):(.+)$/.exec(part);
    if (m && !names.includes(m[2]!)) names.push(m[2]!);
  }
  return names;
}

/** Whether `cert` names node `nodeId` (its CN or a DNS/URI alternative name). */
export function namesNode(cert: PeerCertificate, nodeId: string): boolean {
  return certificateNames(cert).includes(nodeId);
}

export interface TlsFrontHandlers {
  /** A completed handshake (with `authorized` and the client certificate set as node:tls does). */
  readonly secure: (socket: tls.TLSSocket) => void;
  /**
   * A client sent plaintext (its first byte is not a TLS handshake record): it is sent this error
   * as one frame in clear (id 0) and the connection closes; the handler only takes note.
   */
  readonly plaintext: { readonly error: DsyncError; readonly refused: (source: string) => void };
  readonly failed: (source: string, reason: string) => void;
}

/**
 * The TLS side of a port: takes freshly accepted sockets, answers plaintext clients in the
 * protocol's own framing (rather than with an undecodable TLS alert), and completes handshakes
 * through a tls.Server, which verifies client certificates against the CA. The server follows
 * the material's reloads.
 */
export class TlsFront {
  readonly #server: tls.Server;
  readonly #handlers: TlsFrontHandlers;

  constructor(material: TlsMaterial, opts: { requestCert: boolean; rejectUnauthorized: boolean }, handlers: TlsFrontHandlers) {
    this.#handlers = handlers;
    this.#server = tls.createServer({ ...material.serverOptions(), requestCert: opts.requestCert, rejectUnauthorized: opts.rejectUnauthorized, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
    this.#server.on("secureConnection", (t: tls.TLSSocket) => handlers.secure(t));
    this.#server.on("tlsClientError", (err: Error, t: tls.TLSSocket) => {
      handlers.failed(`${t.remoteAddress ?? "?"}`, err.message);
      t.destroy();
    });
    material.onReload(() => this.#server.setSecureContext(material.serverOptions()));
  }

  accept(raw: Socket): void {
    const source = raw.remoteAddress ?? "?";
    // Small frames go out at once: setNoDelay on a TLS socket wrapped around this one does not
    // reach it, and Nagle's delay would stall every request/reply turn.
    raw.setNoDelay(true);
    const timer = setTimeout(() => {
      raw.destroy();
      this.#handlers.failed(source, "sent nothing within 10 s");
    }, HANDSHAKE_TIMEOUT_MS);
    timer.unref();
    raw.once("error", () => undefined);
    raw.once("close", () => clearTimeout(timer));
    raw.once("data", (first: Buffer) => {
      clearTimeout(timer);
      raw.pause();
      if (first[0] !== TLS_HANDSHAKE_BYTE) {
        raw.end(encodeFrame(encodeEnvelope({ type: Op.ERROR, id: 0, body: this.#handlers.plaintext.error.toBody() })));
        // A client that never reads would keep a half-closed socket forever.
        setTimeout(() => raw.destroy(), 1000).unref();
        this.#handlers.plaintext.refused(source);
        return;
      }
      // The TLS socket the server wraps around `raw` reads what is already buffered first.
      raw.unshift(first);
      this.#server.emit("connection", raw);
    });
  }
}

/** A client certificate that verified against the CA, or undefined (none sent, or not trusted). */
export function verifiedPeerCertificate(t: tls.TLSSocket): PeerCertificate | undefined {
  if (!t.authorized) return undefined;
  const cert = t.getPeerCertificate();
  return cert && Object.keys(cert).length > 0 ? cert : undefined;
}

/** Whether the client sent a certificate the CA does not vouch for. */
export function untrustedPeerCertificate(t: tls.TLSSocket): string | null {
  const cert = t.getPeerCertificate();
  if (t.authorized || !cert || Object.keys(cert).length === 0) return null;
  return String(t.authorizationError ?? "not signed by TLS_CA");
}

/**
 * Opens a TLS connection over `socket` (already connected to `addr`). `expectName`, when given,
 * must be among the certificate's names (a peer's node id); otherwise the usual host-name check
 * applies. @throws Error in a newcomer's words.
 */
export function connectTls(socket: Socket, addr: string, host: string, options: tls.ConnectionOptions, expectName: string | null, timeoutMs: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    socket.setNoDelay(true); // see TlsFront.accept
    const t = tls.connect({
      ...options,
      socket,
      minVersion: TLS_MIN_VERSION,
      // SNI takes host names only; an IP address is checked against the certificate's IP names.
      ...(/^[\d.]+$|:/.test(host) ? {} : { servername: host }),
      ...(expectName !== null && {
        checkServerIdentity: (_host: string, cert: PeerCertificate): Error | undefined =>
          namesNode(cert, expectName) ? undefined : new Error(`its certificate names ${certificateNames(cert).join(", ") || "nobody"}, not node ${expectName}`),
      }),
    });
    const timer = setTimeout(() => {
      t.destroy();
      reject(new Error(`TLS handshake with ${addr} took longer than ${timeoutMs} ms`));
    }, timeoutMs);
    t.once("secureConnect", () => {
      clearTimeout(timer);
      t.removeAllListeners("error");
      resolve(t);
    });
    t.once("error", (err) => {
      clearTimeout(timer);
      t.destroy();
      reject(new Error(describeTlsError(err, addr), { cause: err }));
    });
  });
}

const CERTIFICATE_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_GET_ISSUER_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "ERR_SSL_WRONG_VERSION_NUMBER",
  "ERR_SSL_PACKET_LENGTH_TOO_LONG",
  "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED",
  "ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE",
  "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA",
]);

/** Whether a {@link connectTls} failure is a configuration problem (retrying will not help). */
export function isCertificateProblem(err: unknown): boolean {
  const cause = (err as { cause?: { code?: unknown } } | null)?.cause;
  return typeof cause?.code === "string" && CERTIFICATE_CODES.has(cause.code);
}

/** A TLS failure in words that say what to fix. */
export function describeTlsError(err: Error & { code?: string }, addr: string): string {
  switch (err.code) {
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
    case "UNABLE_TO_GET_ISSUER_CERT":
      return `TLS: the certificate of ${addr} is not signed by the CA you trust (check --tls-ca / TLS_CA) [${err.code}]`;
    case "CERT_HAS_EXPIRED":
      return `TLS: the certificate of ${addr} has expired [${err.code}]`;
    case "CERT_NOT_YET_VALID":
      return `TLS: the certificate of ${addr} is not valid yet (check the clocks) [${err.code}]`;
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return `TLS: the certificate of ${addr} does not name that address: ${err.message}`;
    case "ERR_SSL_WRONG_VERSION_NUMBER":
    case "ERR_SSL_PACKET_LENGTH_TOO_LONG":
      return `TLS: ${addr} does not speak TLS (drop the TLS options, or check the port)`;
    case "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED":
    case "ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE":
    case "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA":
      return `TLS: ${addr} refused this side's certificate (missing, or not signed by its CA) [${err.code}]`;
    default:
      return `TLS with ${addr} failed: ${err.message}`;
  }
}
