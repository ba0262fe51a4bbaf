/*
 * deepdenoise sockets for C: publish frames, subscribe to the output, control the
 * service. Each object owns one ZeroMQ socket and, like it, is not thread-safe: use
 * one per thread.
 *
 * Every constructor takes a ZeroMQ context; pass NULL to have the object create (and
 * on close, terminate) a private one.
 */
#ifndef DEEPDENOISE_CLIENT_H
#define DEEPDENOISE_CLIENT_H

#include <zmq.h>

#include "protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DDN_DEFAULT_INPUT "tcp://127.0.0.1:5555"
#define DDN_DEFAULT_OUTPUT "tcp://127.0.0.1:5556"
#define DDN_DEFAULT_CONTROL "tcp://127.0.0.1:5557"

/* ------------------------------------------------------------------ CURVE */

/*
 * Keys for a service with [security]: its sockets are CURVE servers (encrypted) that
 * let in only the clients whose public key it allows. `deepdenoise keys NAME` writes
 * NAME.key (public) and NAME.key_secret (the pair); the service's public key is
 * service.key. A refused key gets no reply at all (ZeroMQ drops the handshake), so it
 * looks like a timeout.
 */
typedef struct ddn_curve_keys {
    char public_key[41]; /* this end's key pair, Z85 */
    char secret_key[41];
    char server_key[41]; /* the service's public key, Z85; "" when this end binds */
    /* Set by ddn_curve_keys_load: 1 when other users may read the NAME.key_secret file
     * (its mode has group or other bits, as pyzmq writes it). The library prints
     * nothing; a program should warn and say to `chmod 600` the file. */
    int secret_shared;
} ddn_curve_keys;

/* Read NAME.key_secret (this end) and, when connecting, service.key (NULL: none).
 * DDN_E_ARGUMENT, naming the file, for one that is missing or not a (secret) key file;
 * DDN_E_ZMQ when libzmq has no CURVE. */
ddn_status ddn_curve_keys_load(ddn_curve_keys *keys, const char *secret_file,
                               const char *server_file, ddn_error *err);

/* ------------------------------------------------------------------ publisher */

typedef enum ddn_mode {
    /* XPUB: the service's SUB connects; ddn_publisher_wait_for_subscriber() tells when
     * it has subscribed (the "slow joiner"). Sends never block; past the high-water
     * mark frames are dropped, as with any PUB socket. */
    DDN_MODE_PUB = 0,
    /* PUSH, for a service with input_mode = "pull": a send blocks while the service is
     * not keeping up (back-pressure), at most `timeout_ms`. */
    DDN_MODE_PUSH = 1
} ddn_mode;

typedef struct ddn_publisher_options {
    ddn_mode mode;     /* default DDN_MODE_PUB */
    int connect;       /* 0 (default): bind, the service connects; 1: connect */
    const char *topic; /* NULL: "frame" */
    int timeout_ms;    /* PUSH: how long a send may block; -1 (default) forever */
    int linger_ms;     /* how long close keeps delivering queued frames; default 1000 */
    ddn_limits limits; /* default ddn_default_limits() */
    /* NULL (default): plain. Bound: a CURVE server with this key pair (the service
     * connects with its security.input_server_key); connecting: a client of
     * server_key. Read only by ddn_publisher_new. */
    const ddn_curve_keys *curve;
} ddn_publisher_options;

ddn_publisher_options ddn_publisher_default_options(void);

typedef struct ddn_publisher ddn_publisher;

/* NULL on failure (err says why). `options` NULL: the defaults. Every constructor here
 * fails with DDN_E_ARGUMENT for a malformed endpoint (no tcp://, a port beyond 65535)
 * and DDN_E_ZMQ for any other bind or connect error (a port in use). */
ddn_publisher *ddn_publisher_new(void *zmq_context, const char *endpoint,
                                 const ddn_publisher_options *options, ddn_error *err);
/* Close, waiting up to linger_ms for queued frames to go out. NULL is fine. */
void ddn_publisher_close(ddn_publisher *pub);

/* The endpoint in use (a bound "tcp://127.0.0.1:*" resolved to its port). */
const char *ddn_publisher_endpoint(const ddn_publisher *pub);
/* The ZeroMQ socket, for options this library does not expose. */
void *ddn_publisher_socket(ddn_publisher *pub);

/* PUB mode: block until a subscriber to the topic is attached (DDN_E_TIMEOUT after
 * timeout_ms). Frames sent after it returns reach that subscriber. */
ddn_status ddn_publisher_wait_for_subscriber(ddn_publisher *pub, int timeout_ms,
                                             ddn_error *err);
/* PUB mode: how many subscriptions matching the topic are active. */
int ddn_publisher_subscribers(ddn_publisher *pub);

/* Announce the start / end of a series (t_ns NULL to leave it out). */
ddn_status ddn_publisher_start(ddn_publisher *pub, const char *series, const uint64_t *t_ns,
                               ddn_error *err);
ddn_status ddn_publisher_end(ddn_publisher *pub, const char *series, const uint64_t *t_ns,
                             ddn_error *err);

/* Validate and send one frame; the pixels are copied into ZeroMQ, so the buffer is
 * free again when this returns. */
ddn_status ddn_publisher_send_frame(ddn_publisher *pub, const ddn_frame *frame,
                                    ddn_error *err);

/*
 * Validate and send one frame without copying the pixels: ZeroMQ reads
 * `frame->pixels` after this returns, from its I/O thread, and then calls
 * `free_fn(frame->pixels, hint)` (from that thread). `free_fn` is called exactly once
 * whatever happens, also when validation or the send fails, so ownership of the buffer
 * always passes here. With `free_fn` NULL the buffer must stay untouched until the
 * publisher is closed.
 */
ddn_status ddn_publisher_send_frame_nocopy(ddn_publisher *pub, const ddn_frame *frame,
                                           zmq_free_fn *free_fn, void *hint, ddn_error *err);

/* ------------------------------------------------------------------ subscriber */

typedef struct ddn_subscriber ddn_subscriber;

/* SUB-connect to `endpoint` for the given topic prefixes ("denoised", "traces",
 * "trigger", "status", "event"; "" for every topic). Subscribe to "traces" and
 * "trigger" in full. At least one topic (DDN_E_ARGUMENT otherwise). */
ddn_subscriber *ddn_subscriber_new(void *zmq_context, const char *endpoint,
                                   const char *const *topics, size_t ntopics,
                                   ddn_error *err);
/* The same as a CURVE client (`curve` NULL: plain); the keys need server_key. */
ddn_subscriber *ddn_subscriber_new_curve(void *zmq_context, const char *endpoint,
                                         const char *const *topics, size_t ntopics,
                                         const ddn_curve_keys *curve, ddn_error *err);
void ddn_subscriber_close(ddn_subscriber *sub);
void *ddn_subscriber_socket(ddn_subscriber *sub);

/*
 * Receive and decode one message into `msg` (its previous content is released).
 * `timeout_ms` -1 waits forever; DDN_E_TIMEOUT when nothing arrived. The payload is
 * not copied: ddn_message_pixels() points into the received ZeroMQ frame, which `msg`
 * keeps alive until the next receive into it or ddn_message_free().
 */
ddn_status ddn_subscriber_recv(ddn_subscriber *sub, ddn_message *msg, int timeout_ms,
                               ddn_error *err);

/* ------------------------------------------------------------------ control */

typedef struct ddn_control ddn_control;

/* REQ-connect to the control endpoint; every request waits `timeout_ms` (-1: forever)
 * for its reply. */
ddn_control *ddn_control_new(void *zmq_context, const char *endpoint, int timeout_ms,
                             ddn_error *err);
/* The same as a CURVE client (`curve` NULL: plain); the keys, which need server_key,
 * are copied, for the socket that replaces one after a timeout. */
ddn_control *ddn_control_new_curve(void *zmq_context, const char *endpoint, int timeout_ms,
                                   const ddn_curve_keys *curve, ddn_error *err);
void ddn_control_close(ddn_control *ctl);

/*
 * Send one encoded request and wait for the reply, decoded into `reply` (its header is
 * the reply map). DDN_OK when the reply has "ok": true; DDN_E_REFUSED when "ok" is
 * false (err->message holds the service's "error"; `reply` is still filled);
 * DDN_E_TIMEOUT when no reply came in time: the REQ socket is then closed with linger 0
 * and replaced, so this control stays usable.
 */
ddn_status ddn_control_request(ddn_control *ctl, const void *request, size_t size,
                               ddn_message *reply, ddn_error *err);

/* One call per command of PROTOCOL.md section 8. */
ddn_status ddn_control_status(ddn_control *ctl, ddn_message *reply, ddn_error *err);
ddn_status ddn_control_pause(ddn_control *ctl, ddn_message *reply, ddn_error *err);
ddn_status ddn_control_resume(ddn_control *ctl, ddn_message *reply, ddn_error *err);
ddn_status ddn_control_flush(ddn_control *ctl, ddn_message *reply, ddn_error *err);
ddn_status ddn_control_stop(ddn_control *ctl, ddn_message *reply, ddn_error *err);
/* `path` is opened by the service: relative to its working directory, on its machine. */
ddn_status ddn_control_load_model(ddn_control *ctl, const char *path, ddn_message *reply,
                                  ddn_error *err);
/* End an open series as its sender's `end` would: for a sender that crashed with it open
 * (the reply has last_index, the last frame received, -1 for none). */
ddn_status ddn_control_end_series(ddn_control *ctl, const char *series, ddn_message *reply,
                                  ddn_error *err);
/* See ddn_encode_set_rois(); labels NULL removes the ROIs. */
ddn_status ddn_control_set_rois(ddn_control *ctl, const char *series, const char *label_dtype,
                                uint32_t height, uint32_t width, const void *labels,
                                ddn_message *reply, ddn_error *err);
/* The same with set_rois' optional arguments, fit and source (ddn_encode_set_rois_with;
 * `options` NULL: the defaults). */
ddn_status ddn_control_set_rois_with(ddn_control *ctl, const char *series,
                                     const char *label_dtype, uint32_t height,
                                     uint32_t width, const void *labels,
                                     const ddn_set_rois_options *options,
                                     ddn_message *reply, ddn_error *err);

#ifdef __cplusplus
}
#endif
#endif
