// Types of deepdenoise-client (hand-written; `npm run typecheck` checks them
// against types/check.ts).

/** A zeromq.js `Context` (typed loosely so that these types need neither zeromq's nor Node's). */
export type Context = object;

/** An integer: a Number when exact (|n| <= 2^53 - 1), a BigInt beyond (t_ns and friends). */
export type Int = number | bigint;

/** Any msgpack value a header may hold (bin is a Uint8Array). */
export type Value =
  null | boolean | number | bigint | string | Uint8Array | Value[] | { [key: string]: Value };

export type Dtype = "|u1" | "<u2" | "<i2" | "<f4";
export type LabelDtype = "|u1" | "<u2" | "<i2" | "<u4" | "<i4" | "<i8";
export type Pixels = Uint8Array | Uint8ClampedArray | Uint16Array | Int16Array | Float32Array;
export type LabelData = Uint8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | BigInt64Array;
/** A message part as given to or received from ZeroMQ. */
export type Part = ArrayBufferView | ArrayBuffer;

export interface Limits {
  maxHeaderBytes: number;
  maxMetaBytes: number;
  maxSide: number;
  maxPayloadBytes: number;
}

/** A decoded header: the known keys typed, any other key a Value. */
export interface Header {
  v: number;
  kind?: "frame" | "start" | "end";
  series?: string;
  index?: number;
  dtype?: string;
  shape?: number[];
  t_ns?: Int;
  meta?: { [key: string]: Value };
  resend?: boolean;
  model?: string;
  t_recv_ns?: Int;
  t_done_ns?: Int;
  [key: string]: Value | undefined;
}

/** One decoded message. `pixels` views the payload in place (a copy only if misaligned). */
export interface Message {
  topic: string;
  header: Header;
  payload: Uint8Array | null;
  pixels: Uint8Array | Uint16Array | Int16Array | Float32Array | null;
  dtype: Dtype | null;
  shape: [number, number] | null;
}

/** One input frame. `dtype` is inferred from `pixels` unless given (then `pixels` may be raw bytes). */
export interface Frame {
  pixels: Pixels;
  shape: [number, number] | number[];
  series: string;
  index: Int;
  dtype?: Dtype;
  /** Unix ns; a BigInt, since epoch nanoseconds exceed 2^53. */
  tNs?: Int | null;
  meta?: { [key: string]: Value } | null;
  resend?: boolean;
}

/** A label image for `set_rois`; `dtype` is inferred from `data` unless given. */
export interface Labels {
  data: LabelData;
  shape: [number, number] | number[];
  dtype?: LabelDtype;
}

export const PROTOCOL_VERSION: 1;
export const DTYPES: Readonly<Record<Dtype, Function>>;
export const LABEL_DTYPES: Readonly<Record<LabelDtype, Function>>;
export const CANONICAL_KEYS: readonly string[];
export const KINDS: readonly ["frame", "start", "end"];
export const TOPICS: Readonly<{
  frame: "frame";
  denoised: "denoised";
  status: "status";
  event: "event";
  traces: "traces";
  trigger: "trigger";
  raw: "raw";
}>;
export const DEFAULT_LIMITS: Readonly<Limits>;
/** Output may exceed the input limits by these factors (header 16x, payload 4x). */
export const OUTPUT_HEADER_FACTOR: 16;
export const OUTPUT_PAYLOAD_FACTOR: 4;
export const DEFAULT_INPUT: string;
export const DEFAULT_OUTPUT: string;
export const DEFAULT_CONTROL: string;

export class ProtocolError extends Error {
  /** The spec's rejection code: "series", "dtype", "shape", "t_ns", ... */
  reason: string;
  constructor(reason: string, message: string);
}
export class ClientTimeoutError extends Error {
  code: "ETIMEDOUT";
}
export class EndpointError extends Error {
  /** ZeroMQ's error code: "EADDRINUSE", "EINVAL", ... */
  code: string | undefined;
}
export class ControlError extends Error {
  /** The service's reply map, with `ok: false` and `error`. */
  reply: { [key: string]: Value } | null;
}

export function canonical<T extends object>(header: T): T;
export function encodeValue(value: unknown): Uint8Array;
export function encodeHeader(header: object): Uint8Array;
export function encodeMessage(topic: string | Part, header: object, payload?: Part | null): Uint8Array[];
export function encodeFrame(frame: Frame, options?: { topic?: string | Part; limits?: Limits }): Uint8Array[];
export function encodeStart(
  series: string,
  options?: { tNs?: Int | null; topic?: string | Part },
): Uint8Array[];
export function encodeEnd(
  series: string,
  options?: { tNs?: Int | null; topic?: string | Part },
): Uint8Array[];
export function encodeRequest(cmd: string, args?: { [key: string]: unknown }): Uint8Array;
export function encodeSetRois(
  labels: Labels | null,
  options?: { series?: string | null; fit?: boolean; source?: string },
): Uint8Array;
export function asBytes(part: Part): Uint8Array;
export function checkSeries(series: string): string;
export function decodeHeader(bytes: Part): Header;
export function decodeValue(bytes: Part): Value;
export function decodeMessage(parts: Part[], options?: { strict?: boolean; limits?: Limits }): Message;

/** The keys of a certificate file: `secretKey` is null in a public `NAME.key`. */
export interface Certificate {
  publicKey: string;
  secretKey: string | null;
}

export const CLIENT_KEY_ENV: "DEEPDENOISE_CLIENT_KEY";
export const SERVER_KEY_ENV: "DEEPDENOISE_SERVER_KEY";
/** Read a certificate file of `deepdenoise keys NAME` (ZPL text, Z85 keys). */
export function readCertificate(file: string): Certificate;

/**
 * CURVE keys for a service with `[security]` (Z85 text, 40 characters each): this end's
 * key pair and, to connect, the service's public key. The `curve` option of Publisher,
 * Subscriber and Control. A refused key gets no reply: it looks like a timeout.
 */
export class CurveKeys {
  constructor(keys: { publicKey: string; secretKey: string; serverKey?: string | null });
  readonly publicKey: string;
  /** Not enumerable: left out of console.log, JSON.stringify and spreads. */
  readonly secretKey: string;
  readonly serverKey: string | null;
  /** The public keys only. */
  toJSON(): { publicKey: string; serverKey: string | null };
  /** `NAME.key_secret` (this end) and, to connect, `service.key` (the service's). */
  static fromFiles(secretFile: string, serverFile?: string | null): CurveKeys;
  /** From DEEPDENOISE_CLIENT_KEY and DEEPDENOISE_SERVER_KEY; null when neither is set. */
  static fromEnv(env?: { [name: string]: string | undefined }): CurveKeys | null;
  /** Set the keys on a zeromq.js socket before it binds (CURVE server) or connects (client). */
  apply(socket: object, options: { bind: boolean }): void;
}

export interface PublisherOptions {
  /** "pub" (XPUB, the default) or "push" (for a service with input_mode = "pull"). */
  mode?: "pub" | "push";
  topic?: string | Part;
  /** Push mode: how long a send may wait for the service (null: as long as it takes). */
  timeoutMs?: number | null;
  /** How long `close()` keeps trying to deliver queued messages (null: until delivered). */
  lingerMs?: number | null;
  limits?: Limits;
  context?: Context;
  /** Bound: a CURVE server with this key pair; connected: a CURVE client (needs serverKey). */
  curve?: CurveKeys | null;
}

export class Publisher {
  constructor(options?: PublisherOptions);
  readonly mode: "pub" | "push";
  endpoint: string | null;
  /** Pub mode: subscriptions matching the topic seen so far by `waitForSubscriber`. */
  subscribers: number;
  bind(endpoint?: string): Promise<this>;
  connect(endpoint?: string): this;
  waitForSubscriber(timeoutMs?: number): Promise<void>;
  sendFrame(frame: Frame): Promise<void>;
  start(series: string, options?: { tNs?: Int | null }): Promise<void>;
  end(series: string, options?: { tNs?: Int | null }): Promise<void>;
  send(parts: Part[]): Promise<void>;
  close(options?: { lingerMs?: number | null }): void;
}

export interface SubscriberOptions {
  /** Topic prefixes; default ["denoised"]. */
  topics?: string[];
  /** `receive()` and iteration give up after this long without a message (null: never). */
  timeoutMs?: number | null;
  limits?: Limits;
  context?: Context;
  /** A CURVE client of a service with `[security]` (needs serverKey). */
  curve?: CurveKeys | null;
}

export class Subscriber implements AsyncIterable<Message> {
  constructor(options?: SubscriberOptions);
  readonly topics: string[];
  endpoint: string | null;
  connect(endpoint?: string): this;
  receive(options?: { timeoutMs?: number | null }): Promise<Message>;
  /** Malformed messages the iteration passed over, and the latest one's error. */
  skipped: number;
  lastError: ProtocolError | null;
  [Symbol.asyncIterator](): AsyncIterator<Message>;
  close(): void;
}

/** A control reply: `ok` is true (a refusal rejects with ControlError). */
export interface Reply {
  ok: boolean;
  [key: string]: Value;
}

export class Control {
  constructor(
    endpoint?: string,
    options?: { timeoutMs?: number | null; context?: Context; curve?: CurveKeys | null },
  );
  readonly endpoint: string;
  request(cmd: string, args?: { [key: string]: unknown }): Promise<Reply>;
  status(): Promise<Reply>;
  pause(): Promise<Reply>;
  resume(): Promise<Reply>;
  flush(): Promise<Reply>;
  stop(): Promise<Reply>;
  loadModel(path: string): Promise<Reply>;
  endSeries(series: string): Promise<Reply>;
  setRois(
    labels: Labels | null,
    options?: { series?: string | null; fit?: boolean; source?: string },
  ): Promise<Reply>;
  close(): void;
}
