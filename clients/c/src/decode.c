/* Decoding and validating messages (PROTOCOL.md sections 3-6), without copying. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ------------------------------------------------------------------ byte-level check */

/*
 * msgpack-c's unpacker accepts things the protocol forbids (int and bin keys, invalid
 * UTF-8) and trusts container counts, so every header is first walked here. The walk
 * reads each byte once and allocates nothing.
 */

#define MAX_DEPTH 24 /* below msgpack-c's unpacker stack (32) */

typedef struct walker {
    const unsigned char *p, *end;
    const char *why;
} walker;

static int need(walker *w, size_t n) {
    if ((size_t)(w->end - w->p) < n) {
        w->why = "truncated";
        return 0;
    }
    return 1;
}

static uint64_t be(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

int ddn__utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned min, cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, min = 0x80, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, min = 0x800, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, min = 0x10000, cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i < len) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += len;
    }
    return 1;
}

static int walk(walker *w, int depth, int is_key);

static int walk_str(walker *w, size_t len) {
    if (!need(w, len)) return 0;
    if (!ddn__utf8_valid(w->p, len)) {
        w->why = "a str holds invalid UTF-8";
        return 0;
    }
    w->p += len;
    return 1;
}

static int walk_container(walker *w, uint64_t n, int is_map, int depth) {
    if (depth >= MAX_DEPTH) {
        w->why = "nested too deeply";
        return 0;
    }
    /* every element takes at least one byte: a count beyond the bytes left is forged */
    if (n > (uint64_t)(w->end - w->p) / (is_map ? 2 : 1)) {
        w->why = "truncated";
        return 0;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (is_map && !walk(w, depth + 1, 1)) return 0;
        if (!walk(w, depth + 1, 0)) return 0;
    }
    return 1;
}

static int walk(walker *w, int depth, int is_key) {
    if (!need(w, 1)) return 0;
    unsigned b = *w->p++;
    int str = (b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb);
    if (is_key && !str) {
        w->why = "a map key is not a str";
        return 0;
    }
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return 1;
    if (b >= 0x80 && b <= 0x8f) return walk_container(w, b & 0x0f, 1, depth);
    if (b >= 0x90 && b <= 0x9f) return walk_container(w, b & 0x0f, 0, depth);
    if (b >= 0xa0 && b <= 0xbf) return walk_str(w, b & 0x1f);
    switch (b) {
    case 0xca: case 0xcb: case 0xcc: case 0xcd: case 0xce: case 0xcf:
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        static const int widths[] = {4, 8, 1, 2, 4, 8, 1, 2, 4, 8};
        int n = widths[b - 0xca];
        if (!need(w, (size_t)n)) return 0;
        w->p += n;
        return 1;
    }
    case 0xd9: case 0xda: case 0xdb: {
        int n = 1 << (b - 0xd9); /* 1, 2, 4 length bytes */
        if (!need(w, (size_t)n)) return 0;
        uint64_t len = be(w->p, n);
        w->p += n;
        return walk_str(w, (size_t)len);
    }
    case 0xc4: case 0xc5: case 0xc6: {
        int n = 1 << (b - 0xc4);
        if (!need(w, (size_t)n)) return 0;
        uint64_t len = be(w->p, n);
        w->p += n;
        if (!need(w, (size_t)len)) return 0;
        w->p += len;
        return 1;
    }
    case 0xdc: case 0xdd: case 0xde: case 0xdf: {
        int n = (b == 0xdc || b == 0xde) ? 2 : 4;
        if (!need(w, (size_t)n)) return 0;
        uint64_t count = be(w->p, n);
        w->p += n;
        return walk_container(w, count, b >= 0xde, depth);
    }
    case 0xc1: w->why = "byte 0xc1 is never used in msgpack"; return 0;
    default: w->why = "ext types are not allowed"; return 0; /* c7-c9, d4-d8 */
    }
}

ddn_status ddn__check_map_bytes(const void *data, size_t size, ddn_error *err) {
    const unsigned char *p = data;
    if (size == 0 || p == NULL)
        return ddn__fail(err, DDN_E_HEADER_DECODE, "header is not a msgpack map: empty");
    unsigned b = p[0];
    if (!((b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf))
        return ddn__fail(err, DDN_E_HEADER_DECODE,
                         "expected the header as one msgpack map, got type byte 0x%02x", b);
    walker w = {p, p + size, NULL};
    if (!walk(&w, 0, 0))
        return ddn__fail(err, DDN_E_HEADER_DECODE, "header is not a valid msgpack map: %s",
                         w.why);
    if (w.p != w.end)
        return ddn__fail(err, DDN_E_HEADER_DECODE,
                         "header has %zu bytes after its msgpack map", (size_t)(w.end - w.p));
    return DDN_OK;
}

/* ------------------------------------------------------------------ messages */

static const msgpack_object empty_map = {MSGPACK_OBJECT_MAP, {.map = {0, NULL}}};

ddn_message *ddn_message_new(void) {
    ddn_message *msg = calloc(1, sizeof *msg);
    if (msg != NULL) msgpack_unpacked_init(&msg->unpacked);
    return msg;
}

void ddn__message_reset(ddn_message *msg) {
    for (size_t i = 0; i < msg->nzparts; i++) zmq_msg_close(&msg->zparts[i]);
    msg->nzparts = 0;
    msgpack_unpacked_destroy(&msg->unpacked);
    msgpack_unpacked_init(&msg->unpacked);
    msg->decoded = 0;
    msg->nparts = 0;
    memset(msg->parts, 0, sizeof msg->parts);
    msg->dtype = DDN_DTYPE_INVALID;
    msg->height = msg->width = 0;
    msg->pixels = NULL;
    msg->payload_size = 0;
}

void ddn_message_free(ddn_message *msg) {
    if (msg == NULL) return;
    ddn__message_reset(msg);
    msgpack_unpacked_destroy(&msg->unpacked);
    free(msg);
}

ddn_status ddn__message_recv(ddn_message *msg, void *socket, ddn_error *err) {
    ddn__message_reset(msg);
    int more;
    do {
        zmq_msg_t scratch;
        /* keep the first parts; a longer message is only counted (then rejected) */
        zmq_msg_t *part = msg->nzparts < DDN_KEPT_PARTS ? &msg->zparts[msg->nzparts] : &scratch;
        zmq_msg_init(part);
        if (zmq_msg_recv(part, socket, 0) < 0) {
            zmq_msg_close(part);
            return ddn__zmq_fail(err, "zmq_msg_recv");
        }
        more = zmq_msg_more(part);
        if (part == &scratch) {
            zmq_msg_close(part);
        } else {
            msg->parts[msg->nzparts].data = zmq_msg_data(part);
            msg->parts[msg->nzparts].size = zmq_msg_size(part);
            msg->nzparts++;
        }
        msg->nparts++;
    } while (more);
    return DDN_OK;
}

/* Unpack part `index` (already checked by ddn__check_map_bytes) into msg->unpacked. */
static ddn_status unpack(ddn_message *msg, size_t index, ddn_error *err) {
    size_t off = 0;
    const ddn_part *part = &msg->parts[index];
    msgpack_unpack_return rc =
        msgpack_unpack_next(&msg->unpacked, part->data, part->size, &off);
    if (rc != MSGPACK_UNPACK_SUCCESS || off != part->size ||
        msg->unpacked.data.type != MSGPACK_OBJECT_MAP)
        return ddn__fail(err, DDN_E_HEADER_DECODE, "header is not a valid msgpack map");
    msg->decoded = 1;
    return DDN_OK;
}

ddn_status ddn__message_decode_map(ddn_message *msg, size_t index, ddn_error *err) {
    if (index >= msg->nparts || index >= DDN_KEPT_PARTS)
        return ddn__fail(err, DDN_E_PARTS, "no part %zu to decode", index);
    ddn_status st = ddn__check_map_bytes(msg->parts[index].data, msg->parts[index].size, err);
    if (st != DDN_OK) return st;
    return unpack(msg, index, err);
}

static int is_int(const msgpack_object *o) {
    return o != NULL && (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                         o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
}

static int is_uint_at_most(const msgpack_object *o, uint64_t max) {
    return o != NULL && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= max;
}

/* value * factor, or the largest uint64 when that overflows (a user's huge limit). */
static uint64_t saturated_times(uint64_t value, uint64_t factor) {
    return value > UINT64_MAX / factor ? UINT64_MAX : value * factor;
}

static int str_eq(const msgpack_object *o, const char *s) {
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

/* Checks 5-11 of section 6, for input messages; *done when the message has no payload. */
static ddn_status check_input(ddn_message *msg, const ddn_limits *limits, int *done,
                              ddn_error *err) {
    const msgpack_object *h = &msg->unpacked.data;
    int has_payload = msg->nparts == 3;
    const msgpack_object *kind = ddn_map_get(h, "kind");
    int is_frame = 1;
    if (kind != NULL) {
        if (!(str_eq(kind, "frame") || str_eq(kind, "start") || str_eq(kind, "end")))
            return ddn__fail(err, DDN_E_KIND, "expected kind \"frame\", \"start\" or \"end\"");
        is_frame = str_eq(kind, "frame");
    }
    const msgpack_object *series = ddn_map_get(h, "series");
    if (series == NULL || series->type != MSGPACK_OBJECT_STR ||
        !ddn_series_valid(series->via.str.ptr, series->via.str.size))
        return ddn__fail(err, DDN_E_SERIES, "expected series of 1-64 characters from "
                                            "[A-Za-z0-9._-], not starting with '.'");
    const msgpack_object *t_ns = ddn_map_get(h, "t_ns");
    if (t_ns != NULL && t_ns->type != MSGPACK_OBJECT_NIL && !is_uint_at_most(t_ns, DDN_MAX_T_NS))
        return ddn__fail(err, DDN_E_T_NS, "expected t_ns as an integer 0..2**63-1");
    const msgpack_object *meta = ddn_map_get(h, "meta");
    if (meta != NULL) {
        if (meta->type != MSGPACK_OBJECT_MAP)
            return ddn__fail(err, DDN_E_META, "expected meta as a map");
        /* its size in canonical encoding: equal to its span on the wire when the sender
         * encoded canonically */
        msgpack_sbuffer buf;
        msgpack_sbuffer_init(&buf);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        ddn_pack_value(&pk, meta);
        size_t size = buf.size;
        msgpack_sbuffer_destroy(&buf);
        if (size > limits->max_meta_bytes)
            return ddn__fail(err, DDN_E_META, "meta is %zu bytes encoded, limit %zu", size,
                             limits->max_meta_bytes);
    }
    const msgpack_object *resend = ddn_map_get(h, "resend");
    if (resend != NULL && resend->type != MSGPACK_OBJECT_BOOLEAN)
        return ddn__fail(err, DDN_E_RESEND, "expected resend as a bool");
    if (!is_frame) {
        if (has_payload)
            return ddn__fail(err, DDN_E_PAYLOAD_UNEXPECTED, "a start/end message has no payload");
        *done = 1;
        return DDN_OK;
    }
    if (!has_payload)
        return ddn__fail(err, DDN_E_PARTS, "a frame needs 3 parts [topic, header, payload]");
    if (!is_uint_at_most(ddn_map_get(h, "index"), DDN_MAX_INDEX))
        return ddn__fail(err, DDN_E_INDEX, "expected index as an integer 0..2**40-1");
    return DDN_OK;
}

/* Checks 12-15: dtype, shape, size and length of the payload, then the view on it.
 * Output (not strict) has the output bound and no max_side: traces have a row per ROI. */
static ddn_status check_payload(ddn_message *msg, int strict, const ddn_limits *limits,
                                ddn_error *err) {
    const msgpack_object *h = &msg->unpacked.data;
    const msgpack_object *dtype = ddn_map_get(h, "dtype");
    ddn_dtype dt = DDN_DTYPE_INVALID;
    if (dtype != NULL && dtype->type == MSGPACK_OBJECT_STR)
        dt = ddn_dtype_parse(dtype->via.str.ptr, dtype->via.str.size);
    if (dt == DDN_DTYPE_INVALID)
        return ddn__fail(err, DDN_E_DTYPE, "expected dtype one of |u1, <u2, <i2, <f4");
    uint64_t max_bytes = strict ? limits->max_payload_bytes
                                : saturated_times(limits->max_payload_bytes,
                                                  DDN_OUTPUT_PAYLOAD_FACTOR);
    uint64_t max_side = strict ? limits->max_side : (max_bytes < UINT32_MAX ? max_bytes
                                                                             : UINT32_MAX);
    const msgpack_object *shape = ddn_map_get(h, "shape");
    if (shape == NULL || shape->type != MSGPACK_OBJECT_ARRAY || shape->via.array.size != 2 ||
        !is_int(&shape->via.array.ptr[0]) || !is_int(&shape->via.array.ptr[1]) ||
        !is_uint_at_most(&shape->via.array.ptr[0], max_side) ||
        !is_uint_at_most(&shape->via.array.ptr[1], max_side) ||
        shape->via.array.ptr[0].via.u64 < 1 || shape->via.array.ptr[1].via.u64 < 1)
        return ddn__fail(err, DDN_E_SHAPE, "expected shape [height, width], each 1..%llu",
                         (unsigned long long)max_side);
    uint32_t height = (uint32_t)shape->via.array.ptr[0].via.u64;
    uint32_t width = (uint32_t)shape->via.array.ptr[1].via.u64;
    uint64_t pixels = (uint64_t)height * width; /* both < 2^32: no overflow */
    if (pixels > max_bytes / ddn_dtype_size(dt))
        return ddn__fail(err, DDN_E_PAYLOAD_SIZE,
                         "a %ux%u %s array is over the payload limit of %llu bytes", height,
                         width, ddn_dtype_str(dt), (unsigned long long)max_bytes);
    uint64_t expected = pixels * ddn_dtype_size(dt);
    const ddn_part *payload = &msg->parts[2];
    if (payload->size != expected)
        return ddn__fail(err, DDN_E_PAYLOAD_LENGTH,
                         "shape [%u, %u] dtype %s needs %llu payload bytes, got %zu", height,
                         width, ddn_dtype_str(dt), (unsigned long long)expected, payload->size);
    msg->dtype = dt;
    msg->height = height;
    msg->width = width;
    msg->pixels = payload->data;
    msg->payload_size = payload->size;
    return DDN_OK;
}

ddn_status ddn__message_decode_parts(ddn_message *msg, int strict, const ddn_limits *limits,
                                     ddn_error *err) {
    ddn_limits defaults = ddn_default_limits();
    if (limits == NULL) limits = &defaults;
    if (msg->nparts != 2 && msg->nparts != 3)
        return ddn__fail(err, DDN_E_PARTS, "expected 2 or 3 message parts, got %zu",
                         msg->nparts);
    uint64_t max_header = strict ? limits->max_header_bytes
                                 : saturated_times(limits->max_header_bytes,
                                                   DDN_OUTPUT_HEADER_FACTOR);
    if (msg->parts[1].size > max_header)
        return ddn__fail(err, DDN_E_HEADER_SIZE, "header is %zu bytes, limit %llu",
                         msg->parts[1].size, (unsigned long long)max_header);
    ddn_status st = ddn__message_decode_map(msg, 1, err);
    if (st != DDN_OK) return st;
    const msgpack_object *v = ddn_map_get(&msg->unpacked.data, "v");
    if (!is_uint_at_most(v, DDN_PROTOCOL_VERSION) || v->via.u64 != DDN_PROTOCOL_VERSION)
        return ddn__fail(err, DDN_E_VERSION, "expected protocol version v=1");
    if (strict) {
        int done = 0;
        st = check_input(msg, limits, &done, err);
        if (st != DDN_OK || done) return st;
    }
    if (msg->nparts == 3 && (st = check_payload(msg, strict, limits, err)) != DDN_OK) return st;
    ddn__ok(err);
    return DDN_OK;
}

ddn_status ddn_message_decode(ddn_message *msg, const ddn_part *parts, size_t nparts,
                              int strict, const ddn_limits *limits, ddn_error *err) {
    if (msg == NULL || (parts == NULL && nparts > 0))
        return ddn__fail(err, DDN_E_ARGUMENT, "message and parts needed");
    ddn__message_reset(msg);
    msg->nparts = nparts;
    for (size_t i = 0; i < nparts && i < DDN_KEPT_PARTS; i++) msg->parts[i] = parts[i];
    return ddn__message_decode_parts(msg, strict, limits, err);
}

ddn_status ddn_message_decode_map(ddn_message *msg, const void *data, size_t size,
                                  ddn_error *err) {
    if (msg == NULL) return ddn__fail(err, DDN_E_ARGUMENT, "message needed");
    ddn__message_reset(msg);
    msg->nparts = 1;
    msg->parts[0].data = data;
    msg->parts[0].size = size;
    ddn_status st = ddn__message_decode_map(msg, 0, err);
    if (st == DDN_OK) ddn__ok(err);
    return st;
}

/* ------------------------------------------------------------------ accessors */

const char *ddn_message_topic(const ddn_message *msg, size_t *len) {
    if (len != NULL) *len = msg->nparts > 0 ? msg->parts[0].size : 0;
    return msg->nparts > 0 ? msg->parts[0].data : NULL;
}

int ddn_message_topic_is(const ddn_message *msg, const char *topic) {
    size_t n = strlen(topic);
    return msg->nparts > 0 && msg->parts[0].size == n &&
           (n == 0 || memcmp(msg->parts[0].data, topic, n) == 0);
}

const msgpack_object *ddn_message_header(const ddn_message *msg) {
    return msg->decoded ? &msg->unpacked.data : &empty_map;
}

size_t ddn_message_part_count(const ddn_message *msg) { return msg->nparts; }

ddn_part ddn_message_part(const ddn_message *msg, size_t i) {
    ddn_part none = {NULL, 0};
    return i < msg->nparts && i < DDN_KEPT_PARTS ? msg->parts[i] : none;
}

const void *ddn_message_pixels(const ddn_message *msg) { return msg->pixels; }
size_t ddn_message_payload_size(const ddn_message *msg) { return msg->payload_size; }
ddn_dtype ddn_message_dtype(const ddn_message *msg) { return msg->dtype; }
uint32_t ddn_message_height(const ddn_message *msg) { return msg->height; }
uint32_t ddn_message_width(const ddn_message *msg) { return msg->width; }

/* ------------------------------------------------------------------ header look-ups */

const msgpack_object *ddn_map_get(const msgpack_object *map, const char *key) {
    if (map == NULL || map->type != MSGPACK_OBJECT_MAP) return NULL;
    /* from the end: a repeated key gives its last value */
    for (uint32_t i = map->via.map.size; i-- > 0;)
        if (str_eq(&map->via.map.ptr[i].key, key)) return &map->via.map.ptr[i].val;
    return NULL;
}

int ddn_map_get_str(const msgpack_object *map, const char *key, const char **str, size_t *len) {
    const msgpack_object *o = ddn_map_get(map, key);
    if (o == NULL || o->type != MSGPACK_OBJECT_STR) return 0;
    if (str != NULL) *str = o->via.str.ptr;
    if (len != NULL) *len = o->via.str.size;
    return 1;
}

int ddn_map_get_int(const msgpack_object *map, const char *key, int64_t *value) {
    const msgpack_object *o = ddn_map_get(map, key);
    if (o == NULL) return 0;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        if (value != NULL) *value = o->via.i64;
        return 1;
    }
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= (uint64_t)INT64_MAX) {
        if (value != NULL) *value = (int64_t)o->via.u64;
        return 1;
    }
    return 0;
}

int ddn_map_get_uint(const msgpack_object *map, const char *key, uint64_t *value) {
    const msgpack_object *o = ddn_map_get(map, key);
    if (o == NULL || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return 0;
    if (value != NULL) *value = o->via.u64;
    return 1;
}

int ddn_map_get_double(const msgpack_object *map, const char *key, double *value) {
    const msgpack_object *o = ddn_map_get(map, key);
    if (o == NULL) return 0;
    double v;
    switch (o->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: v = o->via.f64; break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: v = (double)o->via.u64; break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: v = (double)o->via.i64; break;
    default: return 0;
    }
    if (value != NULL) *value = v;
    return 1;
}

int ddn_map_get_bool(const msgpack_object *map, const char *key, int *value) {
    const msgpack_object *o = ddn_map_get(map, key);
    if (o == NULL || o->type != MSGPACK_OBJECT_BOOLEAN) return 0;
    if (value != NULL) *value = o->via.boolean;
    return 1;
}
