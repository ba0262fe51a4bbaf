/* Shared between the library's sources; not installed. */
#ifndef DDN_INTERNAL_H
#define DDN_INTERNAL_H

#include <zmq.h>

#include "deepdenoise/client.h"
#include "deepdenoise/protocol.h"

/* The payload is read and written in the host's byte order, which must be the
 * protocol's little-endian one. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "deepdenoise: big-endian hosts are not supported (payloads are little-endian)"
#endif

/* A message keeps at most this many parts; a longer one is counted and rejected. */
#define DDN_KEPT_PARTS 3
/* PUSH mode's send high-water mark: frames queued in this process for the service */
#define DDN_PUSH_SEND_HWM 8

struct ddn_message {
    /* Parts received from ZeroMQ, owned here so that views into them stay valid. */
    zmq_msg_t zparts[DDN_KEPT_PARTS];
    size_t nzparts;
    /* Views of the parts (into zparts, or into a caller's buffers). */
    ddn_part parts[DDN_KEPT_PARTS];
    size_t nparts; /* as received: may exceed DDN_KEPT_PARTS */
    /* The decoded header: its strings point into parts[1] (or parts[0] for a reply). */
    msgpack_unpacked unpacked;
    int decoded;
    ddn_dtype dtype;
    uint32_t height, width;
    const void *pixels;
    size_t payload_size;
};

/* Fill `err` (may be NULL) and return `code`. */
ddn_status ddn__fail(ddn_error *err, ddn_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* A ZeroMQ failure with zmq_strerror(errno) appended to `what`. */
ddn_status ddn__zmq_fail(ddn_error *err, const char *what);
/* A bind or connect that failed, naming the endpoint (and its expected form when the
 * endpoint itself is what is wrong). */
ddn_status ddn__endpoint_fail(ddn_error *err, const char *what, const char *endpoint);
/* Whether a tcp endpoint's port is one libzmq takes as written (0-65535, or *). */
int ddn__port_as_written(const char *endpoint);
/* zmq_bind (bind != 0) or zmq_connect, refusing (EINVAL) a port libzmq would remap. */
int ddn__attach(void *socket, const char *endpoint, int bind);
void ddn__ok(ddn_error *err);

/* Release what the message holds and make it empty (reusable). */
void ddn__message_reset(ddn_message *msg);
/* Decode the parts already in msg->parts / msg->nparts (see ddn_message_decode). */
ddn_status ddn__message_decode_parts(ddn_message *msg, int strict, const ddn_limits *limits,
                                     ddn_error *err);
/* Decode part `index` as one msgpack map (a control request or reply). */
ddn_status ddn__message_decode_map(ddn_message *msg, size_t index, ddn_error *err);
/* Receive one multipart message from `socket` into `msg` (after reset). */
ddn_status ddn__message_recv(ddn_message *msg, void *socket, ddn_error *err);

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
int ddn__utf8_valid(const unsigned char *s, size_t n);

/* Checks that `size` bytes are exactly one well-formed msgpack map with str keys at
 * every depth, valid UTF-8 in every str and no ext type, with container counts that fit
 * the bytes (so that a forged count cannot make the unpacker allocate gigabytes). */
ddn_status ddn__check_map_bytes(const void *data, size_t size, ddn_error *err);

/* Monotonic milliseconds, for timeouts. */
int64_t ddn__now_ms(void);
/* zmq_poll for POLLIN on one socket, retried on EINTR: 1 readable, 0 timeout, -1 error. */
int ddn__poll_in(void *socket, int timeout_ms);

/* Create the socket (and a private context when `*ctx` is NULL). */
void *ddn__socket(void **ctx, int *own_ctx, int type, ddn_error *err);
void ddn__close(void *socket, void *ctx, int own_ctx, int linger_ms);

/* Set CURVE keys on `socket` before it binds (a server) or connects (a client of
 * keys->server_key). NULL keys: nothing to do. */
ddn_status ddn__curve_apply(void *socket, const ddn_curve_keys *keys, int bind,
                            ddn_error *err);
/* Zero `n` bytes of secret in a way the compiler cannot drop as a dead store. */
void ddn__wipe(void *p, size_t n);
/* Appended to a timeout's message when CURVE keys are in use: a service drops a refused
 * key's handshake without a word, so a wrong key looks like a timeout. */
#define DDN__CURVE_HINT " Is this client's public key in the service's security.clients folder?"
/* The same for an end that binds: the service is a CURVE client of its key. */
#define DDN__CURVE_SERVER_HINT " Is this end's public key the service's security.input_server_key?"

#endif
