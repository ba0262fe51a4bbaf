/*
 * ddn_publish ENDPOINT SERIES FRAMES HEIGHT WIDTH
 *
 * PUSH-connects to a service whose input is a bound PULL socket, sends `start`,
 * FRAMES <u2 frames of a test pattern (pixel (r, c) of frame i is
 * (1000 i + WIDTH r + c) mod 65536) with t_ns = 1700000000000000000 + i, then `end`.
 * Each frame's buffer is handed to ZeroMQ without a copy and freed by it when sent.
 * With DEEPDENOISE_CLIENT_KEY and DEEPDENOISE_SERVER_KEY set, it connects with CURVE
 * (only one of them, or a wrong key file: exit 2).
 */
#include <stdio.h>
#include <stdlib.h>

#include <deepdenoise/deepdenoise.h>

#include "curve_env.h"

#define T0_NS 1700000000000000000ULL /* above 2**53: t_ns must stay an integer */

/* Called by ZeroMQ (from its I/O thread) once the frame is sent. */
static void free_frame(void *data, void *hint) {
    (void)hint;
    free(data);
}

static int parse_uint(const char *text, unsigned long max, unsigned long *out) {
    char *end;
    unsigned long v = strtoul(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v > max) return 0;
    *out = v;
    return 1;
}

int main(int argc, char **argv) {
    unsigned long frames, height, width;
    if (argc != 6 || !parse_uint(argv[3], 1UL << 40, &frames) ||
        !parse_uint(argv[4], 16384, &height) || !parse_uint(argv[5], 16384, &width) ||
        height == 0 || width == 0) {
        fprintf(stderr, "usage: %s ENDPOINT SERIES FRAMES HEIGHT WIDTH (FRAMES a whole number, "
                        "HEIGHT and WIDTH 1..16384)\n", argv[0]);
        return 2;
    }
    const char *series = argv[2];
    ddn_error err;
    ddn_curve_keys keys;
    ddn_publisher_options options = ddn_publisher_default_options();
    if (!curve_from_env("publish", &keys, &options.curve)) return 2;
    options.mode = DDN_MODE_PUSH; /* back-pressure: no frame dropped in transit */
    options.connect = 1;
    options.timeout_ms = 30000;
    options.linger_ms = 30000; /* close waits for the last frames to go out */
    ddn_publisher *pub = ddn_publisher_new(NULL, argv[1], &options, &err);
    if (pub == NULL) {
        fprintf(stderr, "publisher: %s\n", err.message);
        return 1;
    }
    int status = 0;
    if (ddn_publisher_start(pub, series, NULL, &err) != DDN_OK) {
        fprintf(stderr, "start: %s\n", err.message);
        status = 1;
    }
    for (unsigned long i = 0; status == 0 && i < frames; i++) {
        uint16_t *pixels = malloc(height * width * sizeof *pixels);
        if (pixels == NULL) {
            fprintf(stderr, "out of memory\n");
            status = 1;
            break;
        }
        for (unsigned long r = 0; r < height; r++)
            for (unsigned long c = 0; c < width; c++)
                pixels[r * width + c] = (uint16_t)((1000 * i + width * r + c) % 65536);
        ddn_frame frame = {
            .series = series,
            .index = (int64_t)i,
            .dtype = DDN_U2,
            .height = (uint32_t)height,
            .width = (uint32_t)width,
            .pixels = pixels,
            .has_t_ns = 1,
            .t_ns = T0_NS + i,
        };
        /* the library owns `pixels` from here on, also on failure */
        if (ddn_publisher_send_frame_nocopy(pub, &frame, free_frame, NULL, &err) != DDN_OK) {
            fprintf(stderr, "frame %lu: [%s] %s\n", i, ddn_reason_code(err.code), err.message);
            status = 1;
        }
    }
    if (status == 0 && ddn_publisher_end(pub, series, NULL, &err) != DDN_OK) {
        fprintf(stderr, "end: %s\n", err.message);
        status = 1;
    }
    ddn_publisher_close(pub);
    return status;
}
