// Error classes. Each carries what a caller needs to react without parsing text.

/** A message or value the protocol forbids; `reason` is the spec's rejection code. */
export class ProtocolError extends Error {
  constructor(reason, message) {
    super(message);
    this.name = "ProtocolError";
    this.reason = reason;
  }
}

/** No reply, message or subscriber within the time allowed. */
export class ClientTimeoutError extends Error {
  constructor(message) {
    super(message);
    this.name = "ClientTimeoutError";
    this.code = "ETIMEDOUT";
  }
}

/**
 * A bind or connect failed (a port in use, an endpoint without `tcp://`); the message
 * names the endpoint, `code` is ZeroMQ's (`EADDRINUSE`, `EINVAL`, ...), `cause` its error.
 */
export class EndpointError extends Error {
  constructor(message, { code, cause } = {}) {
    super(message, { cause });
    this.name = "EndpointError";
    this.code = code;
  }
}

/** Rethrow a bind or connect error of zeromq.js as an EndpointError naming `endpoint`. */
export function endpointError(err, action, endpoint) {
  const malformed = err.code === "EINVAL" || err.code === "EPROTONOSUPPORT";
  const hint = malformed ? " (expected an endpoint like tcp://127.0.0.1:5555)" : "";
  return new EndpointError(`cannot ${action} ${endpoint}: ${err.message}${hint}`, {
    code: err.code,
    cause: err,
  });
}

/**
 * Throw an EndpointError for a tcp endpoint whose port libzmq would not take as written:
 * it reads tcp://127.0.0.1:99999 as port 34463 (99999 mod 65536), binds there or waits
 * on it.
 */
export function checkPort(action, endpoint) {
  const text = String(endpoint);
  if (!text.startsWith("tcp://")) return;
  const match = /^tcp:\/\/(.+):([^:]*)$/.exec(text);
  const port = match?.[2];
  if (match && (port === "*" || (/^[0-9]{1,5}$/.test(port) && Number(port) <= 65535))) return;
  throw new EndpointError(
    `cannot ${action} ${text}: expected a TCP endpoint tcp://host:port with a port of 0-65535 (or *)`,
    { code: "EINVAL" },
  );
}

/**
 * An IPv6 address in brackets (tcp://[::1]:5555): libzmq takes one only on a socket
 * with its IPV6 option set (without it: "No such device").
 */
export function ipv6For(socket, endpoint) {
  const text = String(endpoint);
  if (text.startsWith("tcp://") && text.includes("[")) socket.ipv6 = true;
}

/** The service answered a control request with `ok: false`; `reply` is its map. */
export class ControlError extends Error {
  constructor(message, reply = null) {
    super(message);
    this.name = "ControlError";
    this.reply = reply;
  }
}

/**
 * Refuse option names a constructor does not know: a misspelled `curve` would
 * otherwise connect in plain text, unsaid.
 */
export function checkOptions(what, options, known) {
  const unknown = Object.keys(options).filter((name) => !known.includes(name));
  if (unknown.length > 0) {
    throw new TypeError(`${what}: unknown option ${unknown.map((n) => JSON.stringify(n)).join(", ")}; expected ${known.join(", ")}`);
  }
}
