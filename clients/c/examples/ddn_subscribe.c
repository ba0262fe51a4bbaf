/*
 * ddn_subscribe ENDPOINT DENOISED TRACES TRIGGERS
 *
 * SUB-connects to the service's output for denoised, traces, trigger and status.
 * Prints "ready" after the first status message (the subscription is then live), then
 * one JSON line per denoised / traces / trigger message:
 *   {"topic": "denoised", "header": {...}, "sum": <sum of the pixels, read in place>}
 *   {"topic": "traces", "header": {...}, "values": [<rois x columns, row after row>]}
 *   {"topic": "trigger", "header": {...}}
 * Exits 0 once it has seen at least the given counts, 1 after 60 s. With
 * DEEPDENOISE_CLIENT_KEY and DEEPDENOISE_SERVER_KEY set, it connects with CURVE (only
 * one of them, or a wrong key file: exit 2).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <deepdenoise/deepdenoise.h>

#include "curve_env.h"

#define DEADLINE_MS 60000

/* {"topic": ..., "header": {...}: the start of every line. */
static void print_start(const char *topic, const msgpack_object *header) {
    printf("{\"topic\": \"%s\", \"header\": ", topic);
    ddn_fprint_json(stdout, header);
}

static void print_denoised(const ddn_message *msg) {
    /* The pixels stay in the received ZeroMQ frame: read them in place. */
    const void *pixels = ddn_message_pixels(msg);
    size_t n = (size_t)ddn_message_height(msg) * ddn_message_width(msg);
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += ddn_load_double(pixels, ddn_message_dtype(msg), i);
    print_start("denoised", ddn_message_header(msg));
    printf(", \"sum\": %.17g}\n", sum);
}

static void print_traces(const ddn_message *msg) {
    const void *values = ddn_message_pixels(msg);
    uint32_t rows = ddn_message_height(msg), columns = ddn_message_width(msg);
    print_start("traces", ddn_message_header(msg));
    fputs(", \"values\": [", stdout); /* row after row */
    for (size_t i = 0; i < (size_t)rows * columns; i++) {
        msgpack_object v = {.type = MSGPACK_OBJECT_FLOAT64};
        v.via.f64 = ddn_load_f4(values, i);
        if (i) fputs(", ", stdout);
        ddn_fprint_json(stdout, &v);
    }
    fputs("]}\n", stdout);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s ENDPOINT DENOISED TRACES TRIGGERS\n", argv[0]);
        return 2;
    }
    ddn_curve_keys keys;
    const ddn_curve_keys *curve;
    if (!curve_from_env("subscribe", &keys, &curve)) return 2;
    long want[3] = {atol(argv[2]), atol(argv[3]), atol(argv[4])};
    long seen[3] = {0, 0, 0};
    setvbuf(stdout, NULL, _IOLBF, 0); /* one line at a time through a pipe */

    const char *topics[] = {"denoised", "traces", "trigger", "status"};
    ddn_error err;
    ddn_subscriber *sub = ddn_subscriber_new_curve(NULL, argv[1], topics, 4, curve, &err);
    if (sub == NULL) {
        fprintf(stderr, "subscriber: %s\n", err.message);
        return 1;
    }
    ddn_message *msg = ddn_message_new();
    int ready = 0, status = 1;
    struct timespec start;
    timespec_get(&start, TIME_UTC);
    for (;;) {
        if (ready && seen[0] >= want[0] && seen[1] >= want[1] && seen[2] >= want[2]) {
            status = 0;
            break;
        }
        struct timespec now;
        timespec_get(&now, TIME_UTC);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed >= DEADLINE_MS) {
            fprintf(stderr, "timeout: saw %ld denoised, %ld traces, %ld trigger\n", seen[0],
                    seen[1], seen[2]);
            break;
        }
        ddn_status st = ddn_subscriber_recv(sub, msg, (int)(DEADLINE_MS - elapsed), &err);
        if (st == DDN_E_TIMEOUT) continue;
        if (st != DDN_OK) { /* a malformed message: report it and go on */
            fprintf(stderr, "skipped a message: [%s] %s\n", ddn_reason_code(st), err.message);
            continue;
        }
        if (ddn_message_topic_is(msg, "status")) {
            if (!ready) puts("ready");
            ready = 1;
        } else if (!ready) {
            continue; /* only report what comes after "ready" */
        } else if (ddn_message_topic_is(msg, "denoised")) {
            print_denoised(msg);
            seen[0]++;
        } else if (ddn_message_topic_is(msg, "traces")) {
            print_traces(msg);
            seen[1]++;
        } else if (ddn_message_topic_is(msg, "trigger")) {
            print_start("trigger", ddn_message_header(msg));
            puts("}");
            seen[2]++;
        }
    }
    ddn_message_free(msg);
    ddn_subscriber_close(sub);
    return status;
}
