/* The acquisition side: XPUB (waits for the service's subscription) or PUSH. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct ddn_publisher {
    void *ctx;
    int own_ctx;
    void *socket;
    ddn_publisher_options options;
    char topic[256];
    size_t topic_len;
    char endpoint[512];
    int subscriptions; /* PUB mode: active subscriptions matching the topic */
    int curve;         /* with CURVE keys: a refused peer is silent, said on a timeout */
};

/* What a timeout adds with CURVE keys: a refused handshake is dropped without a word. */
static const char *curve_hint(const ddn_publisher *pub) {
    if (!pub->curve) return "";
    return pub->options.connect ? DDN__CURVE_HINT : DDN__CURVE_SERVER_HINT;
}

ddn_publisher_options ddn_publisher_default_options(void) {
    ddn_publisher_options options = {
        .mode = DDN_MODE_PUB,
        .connect = 0,
        .topic = NULL,
        .timeout_ms = -1,
        .linger_ms = 1000,
        .limits = ddn_default_limits(),
        .curve = NULL,
    };
    return options;
}

ddn_publisher *ddn_publisher_new(void *ctx, const char *endpoint,
                                 const ddn_publisher_options *options, ddn_error *err) {
    ddn_publisher_options defaults = ddn_publisher_default_options();
    if (options == NULL) options = &defaults;
    const char *topic = options->topic != NULL ? options->topic : "frame";
    if (endpoint == NULL || strlen(topic) >= sizeof ((ddn_publisher *)0)->topic ||
        (options->mode != DDN_MODE_PUB && options->mode != DDN_MODE_PUSH)) {
        ddn__fail(err, DDN_E_ARGUMENT, "expected an endpoint, a topic under 256 bytes and "
                                       "mode DDN_MODE_PUB or DDN_MODE_PUSH");
        return NULL;
    }
    ddn_publisher *pub = calloc(1, sizeof *pub);
    if (pub == NULL) {
        ddn__fail(err, DDN_E_NOMEM, "out of memory");
        return NULL;
    }
    pub->options = *options;
    pub->topic_len = strlen(topic);
    memcpy(pub->topic, topic, pub->topic_len + 1);
    pub->ctx = ctx;
    int pub_mode = options->mode == DDN_MODE_PUB;
    pub->socket = ddn__socket(&pub->ctx, &pub->own_ctx, pub_mode ? ZMQ_XPUB : ZMQ_PUSH, err);
    if (pub->socket == NULL) {
        free(pub);
        return NULL;
    }
    if (ddn__curve_apply(pub->socket, options->curve, !options->connect, err) != DDN_OK) {
        ddn__close(pub->socket, pub->ctx, pub->own_ctx, 0);
        free(pub);
        return NULL;
    }
    pub->options.curve = NULL; /* the caller's keys are not kept past this call */
    pub->curve = options->curve != NULL;
    int one = 1, rc;
    if (pub_mode) /* every subscription reported, so the count is right with several */
        rc = zmq_setsockopt(pub->socket, ZMQ_XPUB_VERBOSER, &one, sizeof one);
    else { /* queue only on a live connection: a connecting PUSH with no service there
            * times out instead of queueing frames that close would discard unsaid */
        rc = zmq_setsockopt(pub->socket, ZMQ_SNDTIMEO, &options->timeout_ms,
                            sizeof options->timeout_ms);
        if (rc == 0) rc = zmq_setsockopt(pub->socket, ZMQ_IMMEDIATE, &one, sizeof one);
        /* a few frames queued here, not libzmq's 1000: a send that returned is a frame
         * the service is about to read, and back-pressure comes as it falls behind */
        int hwm = DDN_PUSH_SEND_HWM;
        if (rc == 0) rc = zmq_setsockopt(pub->socket, ZMQ_SNDHWM, &hwm, sizeof hwm);
    }
    if (rc != 0) /* an option, not the endpoint */
        ddn__zmq_fail(err, "zmq_setsockopt");
    else if ((rc = ddn__attach(pub->socket, endpoint, !options->connect)) != 0)
        ddn__endpoint_fail(err, options->connect ? "connect to" : "bind", endpoint);
    if (rc != 0) {
        ddn__close(pub->socket, pub->ctx, pub->own_ctx, 0);
        free(pub);
        return NULL;
    }
    size_t len = sizeof pub->endpoint;
    if (options->connect || zmq_getsockopt(pub->socket, ZMQ_LAST_ENDPOINT, pub->endpoint, &len))
        snprintf(pub->endpoint, sizeof pub->endpoint, "%s", endpoint);
    ddn__ok(err);
    return pub;
}

void ddn_publisher_close(ddn_publisher *pub) {
    if (pub == NULL) return;
    ddn__close(pub->socket, pub->ctx, pub->own_ctx, pub->options.linger_ms);
    free(pub);
}

const char *ddn_publisher_endpoint(const ddn_publisher *pub) { return pub->endpoint; }
void *ddn_publisher_socket(ddn_publisher *pub) { return pub->socket; }

/* ------------------------------------------------------------------ subscriptions */

/* Read the (un)subscription messages queued on the XPUB socket: 0x01 or 0x00, then the
 * prefix. Only prefixes of our topic concern us. */
static void drain_subscriptions(ddn_publisher *pub) {
    unsigned char buf[300];
    int n;
    while ((n = zmq_recv(pub->socket, buf, sizeof buf, ZMQ_DONTWAIT)) >= 0) {
        if (n < 1 || (size_t)n > sizeof buf) continue; /* truncated: not a prefix of ours */
        size_t plen = (size_t)n - 1;
        if (plen > pub->topic_len || memcmp(buf + 1, pub->topic, plen) != 0) continue;
        if (buf[0] == 1) pub->subscriptions++;
        else if (buf[0] == 0 && pub->subscriptions > 0) pub->subscriptions--;
    }
}

int ddn_publisher_subscribers(ddn_publisher *pub) {
    if (pub->options.mode != DDN_MODE_PUB) return 0;
    drain_subscriptions(pub);
    return pub->subscriptions;
}

ddn_status ddn_publisher_wait_for_subscriber(ddn_publisher *pub, int timeout_ms,
                                             ddn_error *err) {
    if (pub->options.mode != DDN_MODE_PUB)
        return ddn__fail(err, DDN_E_ARGUMENT, "wait_for_subscriber needs DDN_MODE_PUB");
    int64_t deadline = ddn__now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        drain_subscriptions(pub);
        if (pub->subscriptions > 0) {
            ddn__ok(err);
            return DDN_OK;
        }
        int64_t left = deadline - ddn__now_ms();
        if (timeout_ms >= 0 && left <= 0)
            return ddn__fail(err, DDN_E_TIMEOUT,
                             "no subscriber to topic \"%s\" on %s within %d ms: is the "
                             "service running, with its input connected to this endpoint?%s",
                             pub->topic, pub->endpoint, timeout_ms, curve_hint(pub));
        if (ddn__poll_in(pub->socket, timeout_ms < 0 ? -1 : (int)left) < 0)
            return ddn__zmq_fail(err, "zmq_poll");
    }
}

/* ------------------------------------------------------------------ sending */

/* Send topic, header and (when given) the payload message as one multipart message.
 * Only the first part can block or time out: ZeroMQ accepts the rest of a message once
 * its first part is queued, so a message is never half sent. On failure `payload` is
 * closed (which hands its buffer to its free function). */
static ddn_status send_message(ddn_publisher *pub, const msgpack_sbuffer *header,
                               zmq_msg_t *payload, ddn_error *err) {
    int rc;
    do {
        rc = zmq_send(pub->socket, pub->topic, pub->topic_len, ZMQ_SNDMORE);
    } while (rc < 0 && zmq_errno() == EINTR);
    if (rc >= 0)
        rc = zmq_send(pub->socket, header->data, header->size, payload ? ZMQ_SNDMORE : 0);
    if (rc >= 0 && payload != NULL) rc = zmq_msg_send(payload, pub->socket, 0);
    if (rc >= 0) {
        ddn__ok(err);
        return DDN_OK;
    }
    ddn_status st;
    if (zmq_errno() == EAGAIN)
        st = ddn__fail(err, DDN_E_TIMEOUT,
                       "could not queue a message on %s within %d ms: no PULL peer "
                       "connected, or the service is not keeping up.%s",
                       pub->endpoint, pub->options.timeout_ms, curve_hint(pub));
    else
        st = ddn__zmq_fail(err, "zmq_send");
    if (payload != NULL) zmq_msg_close(payload);
    return st;
}

static ddn_status send_mark(ddn_publisher *pub, const char *kind, const char *series,
                            const uint64_t *t_ns, ddn_error *err) {
    msgpack_sbuffer header;
    msgpack_sbuffer_init(&header);
    ddn_status st = ddn_encode_mark_header(&header, kind, series, t_ns, err);
    if (st == DDN_OK) st = send_message(pub, &header, NULL, err);
    msgpack_sbuffer_destroy(&header);
    return st;
}

ddn_status ddn_publisher_start(ddn_publisher *pub, const char *series, const uint64_t *t_ns,
                               ddn_error *err) {
    return send_mark(pub, "start", series, t_ns, err);
}

ddn_status ddn_publisher_end(ddn_publisher *pub, const char *series, const uint64_t *t_ns,
                             ddn_error *err) {
    return send_mark(pub, "end", series, t_ns, err);
}

static ddn_status send_frame(ddn_publisher *pub, const ddn_frame *frame, int copy,
                             zmq_free_fn *free_fn, void *hint, ddn_error *err) {
    msgpack_sbuffer header;
    msgpack_sbuffer_init(&header);
    ddn_status st = ddn_encode_frame_header(&header, frame, &pub->options.limits, err);
    zmq_msg_t payload;
    int have_payload = 0;
    if (st == DDN_OK) {
        size_t n = (size_t)frame->height * frame->width * ddn_dtype_size(frame->dtype);
        int rc = copy ? zmq_msg_init_size(&payload, n)
                      : zmq_msg_init_data(&payload, (void *)frame->pixels, n, free_fn, hint);
        if (rc != 0) {
            st = ddn__zmq_fail(err, "zmq_msg_init");
        } else {
            have_payload = 1;
            if (copy) memcpy(zmq_msg_data(&payload), frame->pixels, n);
        }
    }
    /* Ownership of a no-copy buffer passed to us: given back when ZeroMQ never got it,
     * also a NULL one (a pool's free_fn may own the buffer by its hint alone). */
    if (!copy && !have_payload && free_fn != NULL)
        free_fn(frame != NULL ? (void *)frame->pixels : NULL, hint);
    if (have_payload) st = send_message(pub, &header, &payload, err);
    msgpack_sbuffer_destroy(&header);
    return st;
}

ddn_status ddn_publisher_send_frame(ddn_publisher *pub, const ddn_frame *frame,
                                    ddn_error *err) {
    return send_frame(pub, frame, 1, NULL, NULL, err);
}

ddn_status ddn_publisher_send_frame_nocopy(ddn_publisher *pub, const ddn_frame *frame,
                                           zmq_free_fn *free_fn, void *hint, ddn_error *err) {
    return send_frame(pub, frame, 0, free_fn, hint, err);
}
