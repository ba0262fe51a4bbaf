/* Errors, dtypes, limits, series ids and small helpers shared by the whole library. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static const char *const reason_codes[] = {
    [DDN_OK] = "ok",
    [DDN_E_PARTS] = "parts",
    [DDN_E_HEADER_SIZE] = "header_size",
    [DDN_E_HEADER_DECODE] = "header_decode",
    [DDN_E_VERSION] = "version",
    [DDN_E_KIND] = "kind",
    [DDN_E_SERIES] = "series",
    [DDN_E_T_NS] = "t_ns",
    [DDN_E_META] = "meta",
    [DDN_E_RESEND] = "resend",
    [DDN_E_PAYLOAD_UNEXPECTED] = "payload_unexpected",
    [DDN_E_INDEX] = "index",
    [DDN_E_DTYPE] = "dtype",
    [DDN_E_SHAPE] = "shape",
    [DDN_E_PAYLOAD_SIZE] = "payload_size",
    [DDN_E_PAYLOAD_LENGTH] = "payload_length",
    [DDN_E_TIMEOUT] = "timeout",
    [DDN_E_REFUSED] = "refused",
    [DDN_E_ARGUMENT] = "argument",
    [DDN_E_ZMQ] = "zmq",
    [DDN_E_NOMEM] = "nomem",
};

const char *ddn_reason_code(ddn_status status) {
    if ((unsigned)status < sizeof reason_codes / sizeof reason_codes[0] &&
        reason_codes[status] != NULL)
        return reason_codes[status];
    return "unknown";
}

ddn_status ddn__fail(ddn_error *err, ddn_status code, const char *fmt, ...) {
    if (err != NULL) {
        va_list args;
        va_start(args, fmt);
        err->code = code;
        vsnprintf(err->message, sizeof err->message, fmt, args);
        va_end(args);
    }
    return code;
}

ddn_status ddn__zmq_fail(ddn_error *err, const char *what) {
    int e = zmq_errno();
    return ddn__fail(err, DDN_E_ZMQ, "%s: %s", what, zmq_strerror(e));
}

int ddn__port_as_written(const char *endpoint) {
    /* libzmq reads tcp://127.0.0.1:99999 as port 34463 (99999 mod 65536) */
    if (strncmp(endpoint, "tcp://", 6) != 0) return 1;
    const char *colon = strrchr(endpoint, ':');
    if (colon == NULL || colon - endpoint <= 6) return 0; /* no host:port after tcp:// */
    const char *port = colon + 1;
    if (strcmp(port, "*") == 0) return 1;
    size_t n = strlen(port);
    if (n == 0 || n > 5) return 0;
    for (size_t i = 0; i < n; i++)
        if (port[i] < '0' || port[i] > '9') return 0;
    return atol(port) <= 65535;
}

int ddn__attach(void *socket, const char *endpoint, int bind) {
    if (!ddn__port_as_written(endpoint)) {
        errno = EINVAL; /* ddn__endpoint_fail says why */
        return -1;
    }
    if (strncmp(endpoint, "tcp://", 6) == 0 && strchr(endpoint, '[') != NULL) {
        /* an IPv6 address (tcp://[::1]:5555): libzmq takes one only with IPV6 set */
        int on = 1;
        if (zmq_setsockopt(socket, ZMQ_IPV6, &on, sizeof on) != 0) return -1;
    }
    return bind ? zmq_bind(socket, endpoint) : zmq_connect(socket, endpoint);
}

ddn_status ddn__endpoint_fail(ddn_error *err, const char *what, const char *endpoint) {
    if (!ddn__port_as_written(endpoint))
        return ddn__fail(err, DDN_E_ARGUMENT,
                         "cannot %s %s: expected a TCP endpoint tcp://host:port with a port "
                         "of 0-65535 (or *)",
                         what, endpoint);
    int e = zmq_errno();
    /* a malformed endpoint is a bad argument (a program's usage error), not a transport's */
    int malformed = e == EINVAL || e == EPROTONOSUPPORT;
    const char *hint = malformed ? " (expected an endpoint like tcp://127.0.0.1:5555)" : "";
    return ddn__fail(err, malformed ? DDN_E_ARGUMENT : DDN_E_ZMQ, "cannot %s %s: %s%s", what,
                     endpoint, zmq_strerror(e), hint);
}

void ddn__ok(ddn_error *err) {
    if (err != NULL) {
        err->code = DDN_OK;
        err->message[0] = '\0';
    }
}

ddn_limits ddn_default_limits(void) {
    ddn_limits limits = {
        .max_header_bytes = 64 * 1024,
        .max_meta_bytes = 8 * 1024,
        .max_side = 16384,
        .max_payload_bytes = (uint64_t)256 * 1024 * 1024,
    };
    return limits;
}

/* ------------------------------------------------------------------ dtypes */

static const struct {
    ddn_dtype dtype;
    const char *name;
    size_t size;
} dtypes[] = {
    {DDN_U1, "|u1", 1},
    {DDN_U2, "<u2", 2},
    {DDN_I2, "<i2", 2},
    {DDN_F4, "<f4", 4},
};
#define NDTYPES (sizeof dtypes / sizeof dtypes[0])

const char *ddn_dtype_str(ddn_dtype dtype) {
    for (size_t i = 0; i < NDTYPES; i++)
        if (dtypes[i].dtype == dtype) return dtypes[i].name;
    return NULL;
}

size_t ddn_dtype_size(ddn_dtype dtype) {
    for (size_t i = 0; i < NDTYPES; i++)
        if (dtypes[i].dtype == dtype) return dtypes[i].size;
    return 0;
}

ddn_dtype ddn_dtype_parse(const char *str, size_t len) {
    for (size_t i = 0; i < NDTYPES; i++)
        if (len == 3 && memcmp(str, dtypes[i].name, 3) == 0) return dtypes[i].dtype;
    return DDN_DTYPE_INVALID;
}

double ddn_load_double(const void *pixels, ddn_dtype dtype, size_t i) {
    switch (dtype) {
    case DDN_U1: return ((const unsigned char *)pixels)[i];
    case DDN_U2: return ddn_load_u2(pixels, i);
    case DDN_I2: return ddn_load_i2(pixels, i);
    case DDN_F4: return ddn_load_f4(pixels, i);
    default: return 0.0;
    }
}

/* ------------------------------------------------------------------ series ids */

int ddn_series_valid(const char *series, size_t len) {
    if (series == NULL || len < 1 || len > DDN_MAX_SERIES || series[0] == '.') return 0;
    for (size_t i = 0; i < len; i++) {
        char c = series[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok) return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ sockets, time */

int64_t ddn__now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ddn__poll_in(void *socket, int timeout_ms) {
    int64_t deadline = timeout_ms < 0 ? -1 : ddn__now_ms() + timeout_ms;
    for (;;) {
        zmq_pollitem_t item = {socket, 0, ZMQ_POLLIN, 0};
        long wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - ddn__now_ms();
            wait = left > 0 ? (long)left : 0;
        }
        int rc = zmq_poll(&item, 1, wait);
        if (rc >= 0) return rc > 0 ? 1 : 0;
        if (zmq_errno() != EINTR) return -1;
    }
}

void *ddn__socket(void **ctx, int *own_ctx, int type, ddn_error *err) {
    *own_ctx = 0;
    if (*ctx == NULL) {
        *ctx = zmq_ctx_new();
        if (*ctx == NULL) {
            ddn__zmq_fail(err, "zmq_ctx_new");
            return NULL;
        }
        *own_ctx = 1;
    }
    void *socket = zmq_socket(*ctx, type);
    if (socket == NULL) {
        ddn__zmq_fail(err, "zmq_socket");
        if (*own_ctx) zmq_ctx_term(*ctx);
        *ctx = NULL;
    }
    return socket;
}

void ddn__close(void *socket, void *ctx, int own_ctx, int linger_ms) {
    if (socket != NULL) {
        zmq_setsockopt(socket, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
        zmq_close(socket);
    }
    if (own_ctx && ctx != NULL) zmq_ctx_term(ctx);
}
