/* The control channel: REQ to the service's REP, one request and one reply at a time. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct ddn_control {
    void *ctx;
    int own_ctx;
    void *socket;
    char endpoint[512];
    int timeout_ms;
    ddn_curve_keys curve; /* a copy: a timeout re-creates the socket with them */
    int has_curve;
};

static ddn_status open_socket(ddn_control *ctl, ddn_error *err) {
    int ctx_was_ours = ctl->own_ctx;
    ctl->socket = ddn__socket(&ctl->ctx, &ctl->own_ctx, ZMQ_REQ, err);
    ctl->own_ctx |= ctx_was_ours; /* a reopen keeps the context it had */
    if (ctl->socket == NULL) return err != NULL ? err->code : DDN_E_ZMQ;
    ddn_status st = ddn__curve_apply(ctl->socket, ctl->has_curve ? &ctl->curve : NULL, 0, err);
    if (st != DDN_OK) {
        zmq_close(ctl->socket);
        ctl->socket = NULL;
        return st;
    }
    int zero = 0;
    if (zmq_setsockopt(ctl->socket, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(ctl->socket, ZMQ_SNDTIMEO, &ctl->timeout_ms, sizeof ctl->timeout_ms))
        st = ddn__zmq_fail(err, "zmq_setsockopt"); /* an option, not the endpoint */
    else if (ddn__attach(ctl->socket, ctl->endpoint, 0) != 0)
        st = ddn__endpoint_fail(err, "connect to", ctl->endpoint);
    if (st != DDN_OK) {
        zmq_close(ctl->socket);
        ctl->socket = NULL;
        return st;
    }
    return DDN_OK;
}

ddn_control *ddn_control_new(void *ctx, const char *endpoint, int timeout_ms,
                             ddn_error *err) {
    return ddn_control_new_curve(ctx, endpoint, timeout_ms, NULL, err);
}

ddn_control *ddn_control_new_curve(void *ctx, const char *endpoint, int timeout_ms,
                                   const ddn_curve_keys *curve, ddn_error *err) {
    if (endpoint == NULL || strlen(endpoint) >= sizeof ((ddn_control *)0)->endpoint) {
        ddn__fail(err, DDN_E_ARGUMENT, "expected a control endpoint");
        return NULL;
    }
    ddn_control *ctl = calloc(1, sizeof *ctl);
    if (ctl == NULL) {
        ddn__fail(err, DDN_E_NOMEM, "out of memory");
        return NULL;
    }
    ctl->ctx = ctx;
    ctl->timeout_ms = timeout_ms;
    if (curve != NULL) {
        ctl->curve = *curve;
        ctl->has_curve = 1;
    }
    snprintf(ctl->endpoint, sizeof ctl->endpoint, "%s", endpoint);
    if (open_socket(ctl, err) != DDN_OK) {
        if (ctl->own_ctx && ctl->ctx != NULL) zmq_ctx_term(ctl->ctx);
        ddn__wipe(&ctl->curve, sizeof ctl->curve);
        free(ctl);
        return NULL;
    }
    ddn__ok(err);
    return ctl;
}

void ddn_control_close(ddn_control *ctl) {
    if (ctl == NULL) return;
    ddn__close(ctl->socket, ctl->ctx, ctl->own_ctx, 0);
    ddn__wipe(&ctl->curve, sizeof ctl->curve); /* the secret key */
    free(ctl);
}

/* A REQ socket that got no reply can send nothing else: close it (linger 0, so the
 * unanswered request is dropped) and open a fresh one. */
static ddn_status timed_out(ddn_control *ctl, ddn_error *err) {
    zmq_close(ctl->socket);
    ctl->socket = NULL;
    ddn_error reopen;
    if (open_socket(ctl, &reopen) != DDN_OK)
        return ddn__fail(err, reopen.code, "no reply, and reopening failed: %s",
                         reopen.message);
    return ddn__fail(err, DDN_E_TIMEOUT,
                     "no reply from %s within %d ms: is the service running with its "
                     "control socket there?%s",
                     ctl->endpoint, ctl->timeout_ms, ctl->has_curve ? DDN__CURVE_HINT : "");
}

ddn_status ddn_control_request(ddn_control *ctl, const void *request, size_t size,
                               ddn_message *reply, ddn_error *err) {
    if (ctl == NULL || reply == NULL || request == NULL)
        return ddn__fail(err, DDN_E_ARGUMENT, "control, request and reply needed");
    ddn__message_reset(reply);
    if (ctl->socket == NULL && open_socket(ctl, err) != DDN_OK)
        return err != NULL ? err->code : DDN_E_ZMQ;
    int rc;
    do {
        rc = zmq_send(ctl->socket, request, size, 0);
    } while (rc < 0 && zmq_errno() == EINTR);
    if (rc < 0) {
        if (zmq_errno() == EAGAIN) return timed_out(ctl, err);
        return ddn__zmq_fail(err, "zmq_send");
    }
    int ready = ddn__poll_in(ctl->socket, ctl->timeout_ms);
    if (ready < 0) return ddn__zmq_fail(err, "zmq_poll");
    if (ready == 0) return timed_out(ctl, err);
    ddn_status st = ddn__message_recv(reply, ctl->socket, err);
    if (st != DDN_OK) return st;
    if ((st = ddn__message_decode_map(reply, 0, err)) != DDN_OK) return st;
    int ok;
    if (!ddn_map_get_bool(ddn_message_header(reply), "ok", &ok))
        return ddn__fail(err, DDN_E_HEADER_DECODE, "the reply is not a map with a bool 'ok'");
    if (!ok) {
        const char *text = "no error message given";
        size_t len = strlen(text);
        ddn_map_get_str(ddn_message_header(reply), "error", &text, &len);
        return ddn__fail(err, DDN_E_REFUSED, "service refused: %.*s", (int)len, text);
    }
    ddn__ok(err);
    return DDN_OK;
}

/* Encode with `st` already set by an encoder, then exchange. */
static ddn_status exchange(ddn_control *ctl, msgpack_sbuffer *request, ddn_status st,
                           ddn_message *reply, ddn_error *err) {
    if (st == DDN_OK) st = ddn_control_request(ctl, request->data, request->size, reply, err);
    msgpack_sbuffer_destroy(request);
    return st;
}

static ddn_status simple(ddn_control *ctl, const char *cmd, ddn_message *reply,
                         ddn_error *err) {
    msgpack_sbuffer request;
    msgpack_sbuffer_init(&request);
    return exchange(ctl, &request, ddn_encode_request(&request, cmd, err), reply, err);
}

ddn_status ddn_control_status(ddn_control *ctl, ddn_message *reply, ddn_error *err) {
    return simple(ctl, "status", reply, err);
}
ddn_status ddn_control_pause(ddn_control *ctl, ddn_message *reply, ddn_error *err) {
    return simple(ctl, "pause", reply, err);
}
ddn_status ddn_control_resume(ddn_control *ctl, ddn_message *reply, ddn_error *err) {
    return simple(ctl, "resume", reply, err);
}
ddn_status ddn_control_flush(ddn_control *ctl, ddn_message *reply, ddn_error *err) {
    return simple(ctl, "flush", reply, err);
}
ddn_status ddn_control_stop(ddn_control *ctl, ddn_message *reply, ddn_error *err) {
    return simple(ctl, "stop", reply, err);
}

ddn_status ddn_control_load_model(ddn_control *ctl, const char *path, ddn_message *reply,
                                  ddn_error *err) {
    msgpack_sbuffer request;
    msgpack_sbuffer_init(&request);
    return exchange(ctl, &request, ddn_encode_load_model(&request, path, err), reply, err);
}

ddn_status ddn_control_end_series(ddn_control *ctl, const char *series, ddn_message *reply,
                                  ddn_error *err) {
    msgpack_sbuffer request;
    msgpack_sbuffer_init(&request);
    return exchange(ctl, &request, ddn_encode_end_series(&request, series, err), reply, err);
}

ddn_status ddn_control_set_rois(ddn_control *ctl, const char *series, const char *label_dtype,
                                uint32_t height, uint32_t width, const void *labels,
                                ddn_message *reply, ddn_error *err) {
    return ddn_control_set_rois_with(ctl, series, label_dtype, height, width, labels, NULL,
                                     reply, err);
}

ddn_status ddn_control_set_rois_with(ddn_control *ctl, const char *series,
                                     const char *label_dtype, uint32_t height,
                                     uint32_t width, const void *labels,
                                     const ddn_set_rois_options *options,
                                     ddn_message *reply, ddn_error *err) {
    msgpack_sbuffer request;
    msgpack_sbuffer_init(&request);
    ddn_status st = ddn_encode_set_rois_with(&request, series, label_dtype, height, width,
                                             labels, options, err);
    return exchange(ctl, &request, st, reply, err);
}
