/* The service's output: denoised frames, traces, trigger, status, event. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct ddn_subscriber {
    void *ctx;
    int own_ctx;
    void *socket;
    ddn_limits limits;
    int curve; /* with CURVE keys: a refused client is silent, said on a timeout */
};

ddn_subscriber *ddn_subscriber_new(void *ctx, const char *endpoint,
                                   const char *const *topics, size_t ntopics,
                                   ddn_error *err) {
    return ddn_subscriber_new_curve(ctx, endpoint, topics, ntopics, NULL, err);
}

ddn_subscriber *ddn_subscriber_new_curve(void *ctx, const char *endpoint,
                                         const char *const *topics, size_t ntopics,
                                         const ddn_curve_keys *curve, ddn_error *err) {
    if (endpoint == NULL || topics == NULL || ntopics == 0) {
        /* a SUB socket with no subscription would receive nothing, silently */
        ddn__fail(err, DDN_E_ARGUMENT,
                  "expected an endpoint and at least one topic (\"\" for every topic)");
        return NULL;
    }
    ddn_subscriber *sub = calloc(1, sizeof *sub);
    if (sub == NULL) {
        ddn__fail(err, DDN_E_NOMEM, "out of memory");
        return NULL;
    }
    sub->limits = ddn_default_limits();
    sub->curve = curve != NULL;
    sub->ctx = ctx;
    sub->socket = ddn__socket(&sub->ctx, &sub->own_ctx, ZMQ_SUB, err);
    if (sub->socket == NULL) {
        free(sub);
        return NULL;
    }
    if (ddn__curve_apply(sub->socket, curve, 0, err) != DDN_OK) {
        ddn__close(sub->socket, sub->ctx, sub->own_ctx, 0);
        free(sub);
        return NULL;
    }
    int rc = 0;
    /* subscribe before connecting: the subscriptions then travel with the handshake */
    for (size_t i = 0; rc == 0 && i < ntopics; i++)
        rc = zmq_setsockopt(sub->socket, ZMQ_SUBSCRIBE, topics[i], strlen(topics[i]));
    if (rc != 0) /* an option, not the endpoint */
        ddn__zmq_fail(err, "zmq_setsockopt");
    else if ((rc = ddn__attach(sub->socket, endpoint, 0)) != 0)
        ddn__endpoint_fail(err, "connect to", endpoint);
    if (rc != 0) {
        ddn__close(sub->socket, sub->ctx, sub->own_ctx, 0);
        free(sub);
        return NULL;
    }
    ddn__ok(err);
    return sub;
}

void ddn_subscriber_close(ddn_subscriber *sub) {
    if (sub == NULL) return;
    ddn__close(sub->socket, sub->ctx, sub->own_ctx, 0);
    free(sub);
}

void *ddn_subscriber_socket(ddn_subscriber *sub) { return sub->socket; }

ddn_status ddn_subscriber_recv(ddn_subscriber *sub, ddn_message *msg, int timeout_ms,
                               ddn_error *err) {
    int ready = ddn__poll_in(sub->socket, timeout_ms);
    if (ready < 0) return ddn__zmq_fail(err, "zmq_poll");
    if (ready == 0) {
        ddn__message_reset(msg);
        return ddn__fail(err, DDN_E_TIMEOUT, "no message within %d ms%s", timeout_ms,
                         sub->curve ? "." DDN__CURVE_HINT : "");
    }
    ddn_status st = ddn__message_recv(msg, sub->socket, err);
    if (st != DDN_OK) return st;
    return ddn__message_decode_parts(msg, 0, &sub->limits, err);
}
