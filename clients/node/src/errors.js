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

/** The service answered a control request with `ok: false`; `reply` is its map. */
export class ControlError extends Error {
  constructor(message, reply = null) {
    super(message);
    this.name = "ControlError";
    this.reply = reply;
  }
}
