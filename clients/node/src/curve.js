// CURVE keys for a service with `[security]`: it answers only clients whose public key
// it allows, over encrypted connections. A refused client gets no reply at all (ZeroMQ
// drops the handshake), so a wrong key looks like a timeout.

import { readFileSync } from "node:fs";

// The Z85 alphabet (ZeroMQ RFC 32): a 32-byte key is 40 of these characters.
const Z85 = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

export const CLIENT_KEY_ENV = "DEEPDENOISE_CLIENT_KEY";
export const SERVER_KEY_ENV = "DEEPDENOISE_SERVER_KEY";

function checkKey(key, what) {
  if (typeof key === "string" && Z85.test(key)) return key;
  let got = typeof key;
  if (typeof key === "string") got = key.length === 40 ? "a character outside Z85" : `${key.length} characters`;
  throw new TypeError(`expected the ${what} as 40 Z85 characters, got ${got}`);
}

/**
 * The keys of a certificate file written by `deepdenoise keys NAME` (pyzmq's ZPL text):
 * `{publicKey, secretKey}`, `secretKey` null for a public `NAME.key`.
 */
export function readCertificate(file) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`cannot read the CURVE key file ${file}: ${err.message}`, { cause: err });
  }
  const keys = { publicKey: null, secretKey: null };
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*(public|secret)-key\s*=\s*(.*?)\s*$/.exec(line);
    // Z85 has no quote characters: the ones around the value are ZPL's.
    if (match) keys[`${match[1]}Key`] = match[2].replace(/^["']|["']$/g, "");
  }
  if (keys.publicKey === null) {
    throw new Error(`${file} is not a CURVE key file: expected a public-key line (deepdenoise keys NAME)`);
  }
  try {
    checkKey(keys.publicKey, "public-key");
    if (keys.secretKey !== null) checkKey(keys.secretKey, "secret-key");
  } catch (err) {
    throw new TypeError(`${file}: ${err.message}`);
  }
  return keys;
}

/**
 * This end's key pair and, when it connects, the service's public key (Z85 text).
 * Give it as the `curve` option of Publisher, Subscriber or Control.
 */
export class CurveKeys {
  constructor({ publicKey, secretKey, serverKey = null }) {
    this.publicKey = checkKey(publicKey, "public key");
    this.secretKey = checkKey(secretKey, "secret key");
    this.serverKey = serverKey === null ? null : checkKey(serverKey, "server key");
  }

  /** Read `NAME.key_secret` (this end) and, to connect, `service.key` (the service's). */
  static fromFiles(secretFile, serverFile = null) {
    const own = readCertificate(secretFile);
    if (own.secretKey === null) {
      throw new Error(`${secretFile} holds no secret key: give the NAME.key_secret file`);
    }
    const serverKey = serverFile === null ? null : readCertificate(serverFile).publicKey;
    return new CurveKeys({ ...own, serverKey });
  }

  /**
   * The keys the environment names, as the `deepdenoise` CLI reads them:
   * DEEPDENOISE_CLIENT_KEY (this client's NAME.key_secret) and DEEPDENOISE_SERVER_KEY
   * (service.key). Null when neither is set; an error when only one is.
   */
  static fromEnv(env = process.env) {
    const [client, server] = [env[CLIENT_KEY_ENV] || null, env[SERVER_KEY_ENV] || null];
    if (client === null && server === null) return null;
    if (client === null || server === null) {
      const missing = client === null ? CLIENT_KEY_ENV : SERVER_KEY_ENV;
      throw new Error(
        `${missing} is not set: expected both ${CLIENT_KEY_ENV} (this client's ` +
          `NAME.key_secret) and ${SERVER_KEY_ENV} (the service's service.key), or neither`,
      );
    }
    return CurveKeys.fromFiles(client, server);
  }

  /**
   * Set the keys on a zeromq.js socket before it binds (a CURVE server: the service
   * connects to it with `security.input_server_key`) or connects (a CURVE client).
   */
  apply(socket, { bind }) {
    if (!bind && this.serverKey === null) {
      throw new Error(
        "expected the service's public key (service.key) to connect: " +
          "CurveKeys.fromFiles(secretFile, serverFile)",
      );
    }
    socket.curvePublicKey = this.publicKey;
    socket.curveSecretKey = this.secretKey;
    if (bind) socket.curveServer = true;
    else socket.curveServerKey = this.serverKey;
  }
}
