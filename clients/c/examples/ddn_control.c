/*
 * ddn_control ENDPOINT CMD [ARGS...]
 *
 *   status | pause | resume | flush | stop
 *   load_model PATH
 *   end_series SERIES
 *   set_rois [--fit] [--source TEXT] LABELS_FILE DTYPE HEIGHT WIDTH [SERIES]
 *       label image as raw C-order bytes; --fit: it is the ROIs' extent from the
 *       frame's top-left corner (any frame that holds it fits); --source: where the
 *       labels came from, 1 to 1024 characters (the service's status names it)
 *   set_rois none [SERIES]                              remove the ROIs
 *   any other CMD (no arguments) is sent as {"cmd": CMD}; the service answers an
 *   unknown one with ok false
 *
 * Sends one request and prints the reply as one JSON line (bin values as
 * "<bin N bytes>"). Exit status: 0 when the reply has ok true; 1 when it has ok false
 * (the reply is still printed); 2 for bad usage (a wrong command line, a LABELS_FILE
 * that cannot be read or does not hold HEIGHT x WIDTH labels of DTYPE, a request the
 * encoder refuses, a CURVE key variable or file that is wrong); 3 when no reply came
 * within 10 s or another transport error.
 *
 * With DEEPDENOISE_CLIENT_KEY (this client's NAME.key_secret) and DEEPDENOISE_SERVER_KEY
 * (the service's service.key) set, it connects with CURVE; a refused key gets no reply.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <deepdenoise/deepdenoise.h>

#include "curve_env.h"

#define TIMEOUT_MS 10000

static int usage(const char *program) {
    fprintf(stderr,
            "usage: %s ENDPOINT status|pause|resume|flush|stop\n"
            "       %s ENDPOINT load_model PATH\n"
            "       %s ENDPOINT end_series SERIES\n"
            "       %s ENDPOINT set_rois [--fit] [--source TEXT] LABELS_FILE DTYPE HEIGHT "
            "WIDTH [SERIES]\n"
            "       %s ENDPOINT set_rois none [SERIES]\n",
            program, program, program, program, program);
    return 2;
}

/* The whole file, malloc'ed; NULL (and a message) on failure. */
static void *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    size_t got;
    while (buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            unsigned char *bigger = realloc(buf, cap *= 2);
            if (bigger == NULL) free(buf);
            buf = bigger;
        }
    }
    fclose(f);
    if (buf == NULL) fprintf(stderr, "out of memory reading %s\n", path);
    *size = n;
    return buf;
}

/* A decimal side length of 1..UINT32_MAX; 0 when `text` is not one. */
static uint32_t parse_side(const char *text) {
    char *end;
    unsigned long long n = strtoull(text, &end, 10);
    if (*text < '0' || *text > '9' || *end != '\0' || n > UINT32_MAX) return 0;
    return (uint32_t)n;
}

/* The bytes per label of a label dtype ("|u1" .. "<i8"), 0 for anything else. */
static size_t label_itemsize(const char *dtype) {
    if (strlen(dtype) != 3) return 0;
    switch (dtype[2]) {
    case '1': case '2': case '4': case '8': return (size_t)(dtype[2] - '0');
    default: return 0;
    }
}

/* The set_rois request from ARGS = none [SERIES] or [--fit] [--source TEXT] LABELS_FILE
 * DTYPE HEIGHT WIDTH [SERIES]. DDN_E_ARGUMENT with err->code DDN_OK for a wrong command
 * line (an argument count, an option that is not one of these). */
static ddn_status encode_set_rois(msgpack_sbuffer *out, int argc, char **argv, ddn_error *err) {
    if (argc >= 1 && strcmp(argv[0], "none") == 0) {
        if (argc > 2) return DDN_E_ARGUMENT;
        return ddn_encode_set_rois(out, argc == 2 ? argv[1] : NULL, NULL, 0, 0, NULL, err);
    }
    ddn_set_rois_options options = {0};
    for (; argc >= 1 && strncmp(argv[0], "--", 2) == 0; argc--, argv++) {
        if (strcmp(argv[0], "--fit") == 0) {
            options.fit = 1;
        } else if (strcmp(argv[0], "--source") == 0 && argc >= 2) {
            options.source = argv[1];
            argc--, argv++; /* the option's value */
        } else {
            return DDN_E_ARGUMENT;
        }
    }
    if (argc != 4 && argc != 5) return DDN_E_ARGUMENT;
    uint32_t height = parse_side(argv[2]), width = parse_side(argv[3]);
    if (height == 0 || width == 0) {
        err->code = DDN_E_ARGUMENT;
        snprintf(err->message, sizeof err->message, "HEIGHT and WIDTH must be positive integers");
        return DDN_E_ARGUMENT;
    }
    size_t size;
    void *labels = read_file(argv[0], &size);
    if (labels == NULL) {
        err->code = DDN_E_ARGUMENT;
        snprintf(err->message, sizeof err->message, "cannot read %s", argv[0]);
        return DDN_E_ARGUMENT;
    }
    /* The encoder reads height * width labels: the file must hold exactly that many. */
    size_t itemsize = label_itemsize(argv[1]);
    uint64_t count = (uint64_t)height * width; /* both below 2^32: no overflow */
    if (itemsize != 0 && (count > SIZE_MAX / itemsize || size != count * itemsize)) {
        free(labels);
        err->code = DDN_E_ARGUMENT;
        snprintf(err->message, sizeof err->message, "%s: %zu bytes is not a %ux%u %s image",
                 argv[0], size, (unsigned)height, (unsigned)width, argv[1]);
        return DDN_E_ARGUMENT;
    }
    ddn_status st = ddn_encode_set_rois_with(out, argc == 5 ? argv[4] : NULL, argv[1], height,
                                             width, labels, &options, err);
    free(labels);
    return st;
}

/* The request the command line asks for; DDN_OK, or why it cannot be sent. */
static ddn_status encode(msgpack_sbuffer *out, const char *cmd, int nargs, char **args,
                         ddn_error *err) {
    if (strcmp(cmd, "load_model") == 0)
        return nargs == 1 ? ddn_encode_load_model(out, args[0], err) : DDN_E_ARGUMENT;
    if (strcmp(cmd, "end_series") == 0)
        return nargs == 1 ? ddn_encode_end_series(out, args[0], err) : DDN_E_ARGUMENT;
    if (strcmp(cmd, "set_rois") == 0) return encode_set_rois(out, nargs, args, err);
    /* status, pause, resume, flush, stop, or any other command (the service answers an
     * unknown one with ok false) */
    return nargs == 0 ? ddn_encode_request(out, cmd, err) : DDN_E_ARGUMENT;
}

int main(int argc, char **argv) {
    if (argc < 3) return usage(argv[0]);
    const char *cmd = argv[2];
    ddn_error err = {DDN_OK, ""};

    /* Everything wrong before sending is a usage error (exit 2). */
    msgpack_sbuffer request;
    msgpack_sbuffer_init(&request);
    ddn_status st = encode(&request, cmd, argc - 3, argv + 3, &err);
    if (st != DDN_OK) {
        msgpack_sbuffer_destroy(&request);
        if (err.code == DDN_OK) return usage(argv[0]);
        fprintf(stderr, "%s: [%s] %s\n", cmd, ddn_reason_code(st), err.message);
        return 2;
    }

    ddn_curve_keys keys;
    const ddn_curve_keys *curve;
    if (!curve_from_env("control", &keys, &curve)) {
        msgpack_sbuffer_destroy(&request);
        return 2;
    }

    /* One round trip: ok true 0, ok false 1 (the reply printed either way), else 3. */
    int status = 3;
    ddn_control *ctl = ddn_control_new_curve(NULL, argv[1], TIMEOUT_MS, curve, &err);
    if (ctl == NULL) {
        fprintf(stderr, "control: %s\n", err.message);
        msgpack_sbuffer_destroy(&request);
        return err.code == DDN_E_ARGUMENT ? 2 : status; /* a malformed ENDPOINT: usage */
    }
    ddn_message *reply = ddn_message_new();
    st = reply == NULL ? DDN_E_NOMEM
                       : ddn_control_request(ctl, request.data, request.size, reply, &err);
    if (st == DDN_OK || st == DDN_E_REFUSED) {
        ddn_fprint_json(stdout, ddn_message_header(reply));
        putchar('\n');
        status = st == DDN_OK ? 0 : 1;
    } else {
        fprintf(stderr, "%s: [%s] %s\n", cmd, ddn_reason_code(st), err.message);
    }
    ddn_message_free(reply);
    ddn_control_close(ctl);
    msgpack_sbuffer_destroy(&request);
    return status;
}
