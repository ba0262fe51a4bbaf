// deepdenoise-client: the Node.js client of the deepdenoise wire protocol v1.

export { ClientTimeoutError, ControlError, EndpointError, ProtocolError } from "./errors.js";
export {
  CANONICAL_KEYS,
  DEFAULT_LIMITS,
  DTYPES,
  KINDS,
  LABEL_DTYPES,
  OUTPUT_HEADER_FACTOR,
  OUTPUT_PAYLOAD_FACTOR,
  PROTOCOL_VERSION,
  TOPICS,
  asBytes,
  canonical,
  checkSeries,
  decodeHeader,
  decodeMessage,
  decodeValue,
  encodeEnd,
  encodeFrame,
  encodeHeader,
  encodeMessage,
  encodeRequest,
  encodeSetRois,
  encodeStart,
  encodeValue,
} from "./protocol.js";
export { DEFAULT_INPUT, Publisher } from "./publisher.js";
export { DEFAULT_OUTPUT, Subscriber } from "./subscriber.js";
export { Control, DEFAULT_CONTROL } from "./control.js";
export { CLIENT_KEY_ENV, SERVER_KEY_ENV, CurveKeys, readCertificate } from "./curve.js";
