// CURVE keys for a service with `[security]`: it answers only clients whose public key
// it allows, over encrypted connections. A refused client gets no reply at all (ZeroMQ
// drops the handshake), so a wrong key looks like a timeout.

import { readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { inspect } from "node:util";

// The Z85 alphabet (ZeroMQ RFC 32): a 32-byte key is 40 of these characters.
const Z85_CHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
const Z85 = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

export const CLIENT_KEY_ENV = "DEEPDENOISE_CLIENT_KEY";
export const SERVER_KEY_ENV = "DEEPDENOISE_SERVER_KEY";

/** Added to a timeout's message with keys: a refused key's handshake is dropped unsaid. */
export const CURVE_HINT = " Is this client's public key in the service's security.clients folder?";
/** The same for an end that binds: the service is a CURVE client of its key. */
export const CURVE_SERVER_HINT = " Is this end's public key the service's security.input_server_key?";

function checkKey(key, what) {
  let got = typeof key;
  if (typeof key === "string" && Z85.test(key)) {
    // Each group of 5 is a base-85 number that must fit 32 bits (40 "#" do not):
    // said here, not by zeromq at connect as a bare "Invalid argument".
    for (let g = 0; g < 40; g += 5) {
      let value = 0;
      for (let i = g; i < g + 5; i++) value = value * 85 + Z85_CHARS.indexOf(key[i]);
      if (value > 0xffffffff) throw new TypeError(`the ${what} is not a valid Z85 key`);
    }
    return key;
  }
  if (typeof key === "string") got = key.length === 40 ? "a character outside Z85" : `${key.length} characters`;
  throw new TypeError(`expected the ${what} as 40 Z85 characters, got ${got}`);
}

// A leading "~" is the home folder, as in a shell (and the other clients).
function expandHome(file) {
  return /^~(\/|$)/.test(file) ? (process.env.HOME ?? homedir()) + file.slice(1) : file;
}

/**
 * The keys of a certificate file written by `deepdenoise keys NAME` (pyzmq's ZPL text):
 * `{publicKey, secretKey}`, `secretKey` null for a public `NAME.key`.
 */
export function readCertificate(file) {
  let text;
  try {
    text = readFileSync(expandHome(file), "utf8");
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
    throw new Error(`${file} holds no public-key: expected a CURVE certificate made by \`deepdenoise keys NAME\``);
  }
  try {
    checkKey(keys.publicKey, "public-key");
    if (keys.secretKey !== null) checkKey(keys.secretKey, "secret-key");
  } catch (err) {
    throw new TypeError(`${file}: ${err.message}`);
  }
  return keys;
}

// A secret key file other users may read is said, not refused (as the service says of
// its own). Windows has no POSIX modes to check.
function warnIfShared(file) {
  if (process.platform === "win32") return;
  if ((statSync(expandHome(file)).mode & 0o077) !== 0) {
    process.emitWarning(`the secret key file ${file} is readable by other users: chmod 600 it`, {
      code: "DEEPDENOISE_CURVE_KEY_MODE",
    });
  }
}

/**
 * This end's key pair and, when it connects, the service's public key (Z85 text).
 * Give it as the `curve` option of Publisher, Subscriber or Control.
 */
export class CurveKeys {
  constructor({ publicKey, secretKey, serverKey = null }) {
    this.publicKey = checkKey(publicKey, "public key");
    // Not enumerable: console.log, JSON.stringify and spreads leave the secret out.
    Object.defineProperty(this, "secretKey", { value: checkKey(secretKey, "secret key") });
    this.serverKey = serverKey === null ? null : checkKey(serverKey, "server key");
  }

  /** The public keys only, for JSON.stringify. */
  toJSON() {
    return { publicKey: this.publicKey, serverKey: this.serverKey };
  }

  [inspect.custom](depth, options) {
    return `CurveKeys ${inspect(this.toJSON(), options)}`;
  }

  /** Read `NAME.key_secret` (this end) and, to connect, `service.key` (the service's). */
  static fromFiles(secretFile, serverFile = null) {
    const own = readCertificate(secretFile);
    if (own.secretKey === null) {
      throw new Error(`${secretFile} holds no secret key: give the NAME.key_secret file, not the public NAME.key`);
    }
    warnIfShared(secretFile);
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
