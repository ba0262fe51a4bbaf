/*
 * deepdenoise wire protocol v1 for C: encode and decode messages, no sockets.
 *
 * Written from clients/PROTOCOL.md. Headers are msgpack maps, represented with
 * msgpack-c's own `msgpack_object`; pixels travel in a separate part and are never
 * copied by the decoder. See client.h for the sockets.
 */
#ifndef DEEPDENOISE_PROTOCOL_H
#define DEEPDENOISE_PROTOCOL_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DDN_PROTOCOL_VERSION 1
#define DDN_MAX_INDEX ((((int64_t)1) << 40) - 1) /* 2**40 - 1 */
#define DDN_MAX_T_NS ((uint64_t)INT64_MAX)    /* 2**63 - 1 */
#define DDN_MAX_SERIES 64
#define DDN_MAX_SOURCE 1024 /* characters of a set_rois source */

/* ------------------------------------------------------------------ results */

/*
 * Every fallible function returns a ddn_status. The protocol's rejection reasons come
 * first, in the order of PROTOCOL.md section 6; ddn_reason_code() gives their wire
 * names ("parts", "header_decode", ...). The others are this library's own.
 */
typedef enum ddn_status {
    DDN_OK = 0,
    DDN_E_PARTS,
    DDN_E_HEADER_SIZE,
    DDN_E_HEADER_DECODE,
    DDN_E_VERSION,
    DDN_E_KIND,
    DDN_E_SERIES,
    DDN_E_T_NS,
    DDN_E_META,
    DDN_E_RESEND,
    DDN_E_PAYLOAD_UNEXPECTED,
    DDN_E_INDEX,
    DDN_E_DTYPE,
    DDN_E_SHAPE,
    DDN_E_PAYLOAD_SIZE,
    DDN_E_PAYLOAD_LENGTH,
    /* not protocol codes: */
    DDN_E_TIMEOUT,  /* nothing arrived, or a send could not be queued, in time */
    DDN_E_REFUSED,  /* the service replied {"ok": false, "error": ...} */
    DDN_E_ARGUMENT, /* a bad argument to a library function */
    DDN_E_ZMQ,      /* a ZeroMQ call failed (message has zmq_strerror) */
    DDN_E_NOMEM
} ddn_status;

/* "parts", "header_decode", ... for protocol codes; "timeout", "refused", ... otherwise. */
const char *ddn_reason_code(ddn_status status);

/* Optional out-parameter of every fallible call: the code and a message saying what
 * was expected. Pass NULL when you only need the returned code. */
typedef struct ddn_error {
    ddn_status code;
    char message[256];
} ddn_error;

/* ------------------------------------------------------------------ limits */

/* The receiving service's limits; ddn_default_limits() gives the reference service's.
 * Checked before sending so that a frame the service would reject fails at the call. */
typedef struct ddn_limits {
    size_t max_header_bytes;  /* 65536 */
    size_t max_meta_bytes;    /* 8192 */
    uint32_t max_side;        /* 16384 */
    uint64_t max_payload_bytes; /* 256 MiB */
} ddn_limits;

ddn_limits ddn_default_limits(void);

/* The service's output may exceed its input limits by these factors (PROTOCOL.md,
 * section 7): a traces header lists every ROI's label (16 x 64 KiB), and a float32
 * output of the largest |u1 frame is 4 times its size (4 x 256 MiB). A decoder without
 * `strict` applies them. */
#define DDN_OUTPUT_HEADER_FACTOR 16
#define DDN_OUTPUT_PAYLOAD_FACTOR 4

/* ------------------------------------------------------------------ dtypes */

typedef enum ddn_dtype {
    DDN_DTYPE_INVALID = 0,
    DDN_U1, /* "|u1" uint8 */
    DDN_U2, /* "<u2" uint16, little-endian */
    DDN_I2, /* "<i2" int16, little-endian */
    DDN_F4  /* "<f4" float32, little-endian */
} ddn_dtype;

const char *ddn_dtype_str(ddn_dtype dtype); /* "|u1", ...; NULL for an invalid one */
size_t ddn_dtype_size(ddn_dtype dtype);     /* bytes per pixel; 0 for an invalid one */
/* The dtype named by `len` bytes at `str` (not NUL-terminated), or DDN_DTYPE_INVALID. */
ddn_dtype ddn_dtype_parse(const char *str, size_t len);

/* Payloads are not aligned: read pixel i through these (a memcpy the compiler turns
 * into one load). The payload is little-endian; this library refuses big-endian hosts. */
static inline uint16_t ddn_load_u2(const void *pixels, size_t i) {
    uint16_t v;
    memcpy(&v, (const unsigned char *)pixels + 2 * i, 2);
    return v;
}
static inline int16_t ddn_load_i2(const void *pixels, size_t i) {
    int16_t v;
    memcpy(&v, (const unsigned char *)pixels + 2 * i, 2);
    return v;
}
static inline float ddn_load_f4(const void *pixels, size_t i) {
    float v;
    memcpy(&v, (const unsigned char *)pixels + 4 * i, 4);
    return v;
}
/* Pixel i of any dtype as a double (for sums, printing). */
double ddn_load_double(const void *pixels, ddn_dtype dtype, size_t i);

/* ------------------------------------------------------------------ checks */

/* 1-64 characters from [A-Za-z0-9._-], not starting with '.'. */
int ddn_series_valid(const char *series, size_t len);

/* ------------------------------------------------------------------ encoding */

/*
 * One input frame to send. Designated initializers make absent fields zero:
 *
 *   ddn_frame f = {.series = "cell-01", .index = i, .dtype = DDN_U2,
 *                  .height = 512, .width = 512, .pixels = buf,
 *                  .has_t_ns = 1, .t_ns = now_ns};
 */
typedef struct ddn_frame {
    const char *series;  /* NUL-terminated series id */
    int64_t index;       /* 0 .. 2**40-1 */
    ddn_dtype dtype;
    uint32_t height, width;       /* each 1 .. max_side */
    const void *pixels;           /* height*width*itemsize bytes, C order */
    int has_t_ns;                 /* write t_ns (Unix ns) */
    uint64_t t_ns;                /* 0 .. 2**63-1: keep it an integer, it exceeds 2**53 */
    const msgpack_object *meta;   /* NULL, or a map (str keys) kept with the frame */
    int resend;                   /* this index replaces one sent before */
    const msgpack_object *extra;  /* NULL, or a map of extra keys (vendor keys "x_..."),
                                     written after the known ones in their order */
} ddn_frame;

/* Validate `frame` (dtype, shape, series, index, t_ns, meta, sizes) and append its
 * canonical header to `out`. On failure `out` is unchanged and the status is the
 * reason the service would have rejected the frame with. */
ddn_status ddn_encode_frame_header(msgpack_sbuffer *out, const ddn_frame *frame,
                                   const ddn_limits *limits, ddn_error *err);

/* The header of a "start" or "end" message (t_ns NULL when absent). */
ddn_status ddn_encode_mark_header(msgpack_sbuffer *out, const char *kind, const char *series,
                                  const uint64_t *t_ns, ddn_error *err);

/*
 * Any header map, canonically: top-level keys in the order v, kind, series, index,
 * dtype, shape, t_ns, meta, resend, model, t_recv_ns, t_done_ns, then the others in
 * their given order; nested maps keep their order; smallest integers, str strings,
 * float64 floats. Every key must be a str (DDN_E_HEADER_DECODE otherwise).
 */
ddn_status ddn_encode_header(msgpack_sbuffer *out, const msgpack_object *map, ddn_error *err);

/* Any value with canonical scalars (smallest ints, float64, str) and maps in their
 * given order: what "meta in canonical encoding" means. */
void ddn_pack_value(msgpack_packer *pk, const msgpack_object *value);

/* Control requests: one msgpack map, "cmd" first. */
ddn_status ddn_encode_request(msgpack_sbuffer *out, const char *cmd, ddn_error *err);
ddn_status ddn_encode_load_model(msgpack_sbuffer *out, const char *path, ddn_error *err);
/* end_series: end an open series as its sender's `end` would (a sender that crashed). */
ddn_status ddn_encode_end_series(msgpack_sbuffer *out, const char *series, ddn_error *err);
/* set_rois: `series` NULL for every series; `labels` NULL removes the ROIs (then
 * `label_dtype`, `height`, `width` are ignored). `label_dtype` is one of "|u1", "<u2",
 * "<i2", "<u4", "<i4", "<i8"; `labels` holds height*width of them, little-endian. */
ddn_status ddn_encode_set_rois(msgpack_sbuffer *out, const char *series,
                               const char *label_dtype, uint32_t height, uint32_t width,
                               const void *labels, ddn_error *err);

/* The optional arguments of set_rois; all zero (or a NULL pointer to them) are the
 * defaults, which ddn_encode_set_rois() sends. */
typedef struct ddn_set_rois_options {
    /* The label image is the ROIs' extent from the frame's top-left corner, not the
     * whole frame (ROIs known only by their pixels), so any frame that holds it fits. */
    int fit;
    /* NULL, or where the labels came from (a file's path, say): 1 to DDN_MAX_SOURCE
     * characters of UTF-8, none a control character (U+0000-U+001F, U+007F-U+009F),
     * as the service checks it (DDN_E_ARGUMENT otherwise). The service's
     * status.traces.source and the stored traces' rois_source then name it. */
    const char *source;
} ddn_set_rois_options;

/* ddn_encode_set_rois() with `options` (NULL: the defaults), written after `labels`:
 * "fit" when true, "source" when given. */
ddn_status ddn_encode_set_rois_with(msgpack_sbuffer *out, const char *series,
                                    const char *label_dtype, uint32_t height, uint32_t width,
                                    const void *labels, const ddn_set_rois_options *options,
                                    ddn_error *err);

/* ------------------------------------------------------------------ decoding */

/* One received part, as bytes. */
typedef struct ddn_part {
    const void *data;
    size_t size;
} ddn_part;

/*
 * A decoded message. Opaque: it owns (or, from ddn_message_decode, borrows) the parts,
 * and everything you read from it points into them. Reuse one for many receives.
 */
typedef struct ddn_message ddn_message;

ddn_message *ddn_message_new(void);
void ddn_message_free(ddn_message *msg); /* NULL is fine */

/*
 * Decode `nparts` parts without copying: the message points into the caller's buffers,
 * which must outlive its use. `strict` applies every input-message rule of PROTOCOL.md
 * section 6, in order, so the status is the reason code the service would report;
 * without it, only what is needed to read the message safely is checked (parts, header
 * size and decoding, v, and dtype/shape/length when there is a payload), against the
 * output bounds (DDN_OUTPUT_HEADER_FACTOR, DDN_OUTPUT_PAYLOAD_FACTOR; no max_side).
 */
ddn_status ddn_message_decode(ddn_message *msg, const ddn_part *parts, size_t nparts,
                              int strict, const ddn_limits *limits, ddn_error *err);

/* Decode one part holding one msgpack map with str keys (a control request or reply),
 * without copying: ddn_message_header() is then that map. */
ddn_status ddn_message_decode_map(ddn_message *msg, const void *data, size_t size,
                                  ddn_error *err);

/* The topic (part 0; not NUL-terminated) and whether it equals `topic` exactly. */
const char *ddn_message_topic(const ddn_message *msg, size_t *len);
int ddn_message_topic_is(const ddn_message *msg, const char *topic);
/* The header map; strings in it point into the header part. */
const msgpack_object *ddn_message_header(const ddn_message *msg);
size_t ddn_message_part_count(const ddn_message *msg);
/* The raw bytes of part i (i < part count). */
ddn_part ddn_message_part(const ddn_message *msg, size_t i);

/* The payload, viewed in place (NULL / 0 when the message has none). Not aligned. */
const void *ddn_message_pixels(const ddn_message *msg);
size_t ddn_message_payload_size(const ddn_message *msg);
ddn_dtype ddn_message_dtype(const ddn_message *msg);
uint32_t ddn_message_height(const ddn_message *msg);
uint32_t ddn_message_width(const ddn_message *msg);

/*
 * Header look-ups. A key appearing twice gives its last value (as the reference
 * service keeps). Each returns 1 when the key is there with that type, else 0.
 * ddn_map_get_double accepts float32, float64 and integers.
 */
const msgpack_object *ddn_map_get(const msgpack_object *map, const char *key);
int ddn_map_get_str(const msgpack_object *map, const char *key, const char **str, size_t *len);
int ddn_map_get_int(const msgpack_object *map, const char *key, int64_t *value);
int ddn_map_get_uint(const msgpack_object *map, const char *key, uint64_t *value);
int ddn_map_get_double(const msgpack_object *map, const char *key, double *value);
int ddn_map_get_bool(const msgpack_object *map, const char *key, int *value);

/*
 * Write `value` as JSON (for logs and the example programs): bin as "<bin N bytes>",
 * non-finite floats as NaN / Infinity / -Infinity (which Python's json reads), 64-bit
 * integers exactly.
 */
void ddn_fprint_json(FILE *out, const msgpack_object *value);

#ifdef __cplusplus
}
#endif
#endif
