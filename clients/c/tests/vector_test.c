/*
 * The golden vectors (clients/PROTOCOL.md section 10), checked with this library:
 *
 *   valid:     decode every part and compare with the listed header, dtype, shape,
 *              payload_sha256 and pixels;
 *   canonical: re-encode the listed header, byte for byte, with the generic canonical
 *              encoder and, where the typed API can express the message (input frames,
 *              start/end, control requests), with that too;
 *   invalid:   decode with every input rule and expect the listed reject_reason.
 *
 * usage: ddn_vector_test VECTORS_DIR   (prints one line per vector, then the totals)
 * No vector is skipped: C can express all of them. vectors.json is read with jansson,
 * payload_sha256 computed with OpenSSL (EVP); only this test links them, not the library.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include <deepdenoise/deepdenoise.h>

#define MAX_PARTS 8

typedef struct {
    unsigned char *data;
    size_t size;
    ddn_part parts[MAX_PARTS];
    size_t nparts;
} message_file;

/* Why the current vector failed; the first reason is kept. */
static char why[1024];

static int failf(const char *fmt, const char *a, const char *b) {
    if (why[0] == '\0') snprintf(why, sizeof why, fmt, a ? a : "", b ? b : "");
    return 0;
}

static unsigned char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

/* A message file: each part is a uint32 little-endian length, then the bytes. */
static int load_message(const char *dir, const char *file, message_file *m) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    memset(m, 0, sizeof *m);
    m->data = read_all(path, &m->size);
    if (m->data == NULL) return failf("cannot read %s in the vectors folder%s", file, NULL);
    size_t at = 0;
    while (at < m->size) {
        if (m->size - at < 4 || m->nparts == MAX_PARTS) return failf("%s: bad part framing%s", file, NULL);
        const unsigned char *p = m->data + at;
        size_t len = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
        at += 4;
        if (m->size - at < len) return failf("%s: part overruns the file%s", file, NULL);
        m->parts[m->nparts].data = m->data + at;
        m->parts[m->nparts].size = len;
        m->nparts++;
        at += len;
    }
    return 1;
}

/* ------------------------------------------------------------------ vectors.json */

/* vectors.json is read with jansson (integers stay exact as json_int_t, never doubles;
 * objects keep their file order), with one addition: jansson refuses an integer literal
 * above INT64_MAX ("too big integer"), while msgpack and the protocol's uint64 fields
 * (t_ns) go up to 2**64-1 and the file holds such literals (invalid_t_ns_2_63: 2**63).
 * quote_big_integers() therefore rewrites, before parsing, every integer literal in
 * (INT64_MAX, UINT64_MAX] outside a string into the string "\u0000<digits>", loaded with
 * JSON_ALLOW_NUL, and integer_of() reads it back as that exact uint64. No string of the
 * file may itself start with \u0000 (refused), so a string that starts with NUL is always
 * one of these. Any other literal (reals, integers in int64 range, larger or smaller ones,
 * which jansson then refuses) is left as it is; the rewrite adds no line, so jansson's
 * line numbers still point into the file. */

static int starts_with_nul_escape(const char *s, const char *end) {
    return end - s >= 6 && s[0] == '\\' && s[1] == 'u' && s[2] == '0' && s[3] == '0' &&
           s[4] == '0' && s[5] == '0';
}

static char *quote_big_integers(const char *text, size_t len, size_t *out_len, char *error,
                                size_t error_len) {
    char *out = malloc(2 * len + 1); /* a quoted literal grows by 8 bytes, from 19 digits */
    const char *p = text, *end = text + len;
    size_t n = 0;
    if (out == NULL) {
        snprintf(error, error_len, "out of memory");
        return NULL;
    }
    while (p < end) {
        if (*p == '"') { /* a string or a key: copied as it is */
            const char *s = p++;
            if (starts_with_nul_escape(p, end)) {
                snprintf(error, error_len, "a string starting with \\u0000 at byte %ld",
                         (long)(p - text));
                free(out);
                return NULL;
            }
            while (p < end && *p != '"') p += *p == '\\' ? 2 : 1;
            if (p < end) p++;
            if (p > end) p = end;
            memcpy(out + n, s, (size_t)(p - s));
            n += (size_t)(p - s);
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) { /* a number */
            const char *s = p;
            int digits_only = 1;
            while (p < end && strchr("0123456789+-.eE", *p) != NULL) {
                digits_only &= *p >= '0' && *p <= '9';
                p++;
            }
            size_t t = (size_t)(p - s);
            char buf[32] = "";
            unsigned long long v = 0;
            if (digits_only && s[0] != '0' && t >= 19 && t <= 20) {
                memcpy(buf, s, t);
                buf[t] = '\0';
                errno = 0;
                v = strtoull(buf, NULL, 10);
                if (errno == ERANGE) v = 0;
            }
            if (v > (unsigned long long)INT64_MAX) {
                n += (size_t)sprintf(out + n, "\"\\u0000%s\"", buf);
            } else {
                memcpy(out + n, s, t);
                n += t;
            }
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

/* vectors.json, or NULL with a message in `error`. */
static json_t *load_vectors_json(const char *text, size_t len, char *error, size_t error_len) {
    size_t n;
    char *quoted = quote_big_integers(text, len, &n, error, error_len);
    if (quoted == NULL) return NULL;
    json_error_t jerr;
    json_t *root = json_loadb(quoted, n, JSON_ALLOW_NUL, &jerr); /* not JSON_DECODE_INT_AS_REAL */
    free(quoted);
    if (root == NULL) snprintf(error, error_len, "line %d: %s", jerr.line, jerr.text);
    return root;
}

/* A JSON integer: `i` when negative, else `u`. */
typedef struct {
    int negative;
    int64_t i;
    uint64_t u;
} integer;

/* 1 when `j` is an integer: a jansson integer or a quoted one above INT64_MAX. */
static int integer_of(const json_t *j, integer *out) {
    memset(out, 0, sizeof *out);
    if (json_is_integer(j)) {
        json_int_t v = json_integer_value(j);
        out->negative = v < 0;
        out->i = (int64_t)v;
        out->u = v < 0 ? 0 : (uint64_t)v;
        return 1;
    }
    if (json_is_string(j) && json_string_length(j) > 0 && json_string_value(j)[0] == '\0') {
        out->u = strtoull(json_string_value(j) + 1, NULL, 10);
        return 1;
    }
    return 0;
}

/* A non-negative integer (sizes, shapes, limits, t_ns); 0 for anything else. */
static uint64_t uint_of(const json_t *j) {
    integer n;
    return integer_of(j, &n) && !n.negative ? n.u : 0;
}

/* 1 when `j` is the string `s`. */
static int is_str(const json_t *j, const char *s) {
    return json_is_string(j) && strcmp(json_string_value(j), s) == 0;
}

static const char *str_of(const json_t *j) { return json_string_value(j); }

/* The SHA-256 of `size` bytes as 64 lowercase hex characters (OpenSSL's EVP API). */
static int sha256_hex(const void *data, size_t size, char hex[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    hex[0] = '\0';
    if (EVP_Digest(data, size, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32) return 0;
    for (unsigned int k = 0; k < md_len; k++) sprintf(hex + 2 * k, "%02x", md[k]);
    return 1;
}

/* ------------------------------------------------------------------ JSON <-> msgpack */

/* The JSON value as a msgpack_object (allocated in `zone`; strings point into `j`). */
static int to_object(const json_t *j, msgpack_zone *zone, msgpack_object *o) {
    integer n;
    memset(o, 0, sizeof *o);
    if (integer_of(j, &n)) {
        if (n.negative) {
            o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
            o->via.i64 = n.i;
        } else {
            o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            o->via.u64 = n.u;
        }
        return 1;
    }
    switch (json_typeof(j)) {
    case JSON_NULL: o->type = MSGPACK_OBJECT_NIL; return 1;
    case JSON_TRUE:
    case JSON_FALSE:
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = json_is_true(j);
        return 1;
    case JSON_INTEGER: return 0; /* handled above */
    case JSON_REAL:
        o->type = MSGPACK_OBJECT_FLOAT64;
        o->via.f64 = json_real_value(j);
        return 1;
    case JSON_STRING:
        o->type = MSGPACK_OBJECT_STR;
        o->via.str.ptr = json_string_value(j);
        o->via.str.size = (uint32_t)json_string_length(j);
        return 1;
    case JSON_ARRAY: {
        size_t count = json_array_size(j);
        o->type = MSGPACK_OBJECT_ARRAY;
        o->via.array.size = (uint32_t)count;
        o->via.array.ptr = msgpack_zone_malloc(zone, (count ? count : 1) * sizeof(msgpack_object));
        for (size_t i = 0; i < count; i++)
            if (!to_object(json_array_get(j, i), zone, &o->via.array.ptr[i])) return 0;
        return 1;
    }
    case JSON_OBJECT: {
        size_t count = json_object_size(j), i = 0;
        const char *key;
        json_t *value;
        o->type = MSGPACK_OBJECT_MAP;
        o->via.map.size = (uint32_t)count;
        o->via.map.ptr = msgpack_zone_malloc(zone, (count ? count : 1) * sizeof(msgpack_object_kv));
        json_object_foreach((json_t *)j, key, value) { /* in file order */
            msgpack_object_kv *kv = &o->via.map.ptr[i++];
            kv->key.type = MSGPACK_OBJECT_STR;
            kv->key.via.str.ptr = key;
            kv->key.via.str.size = (uint32_t)strlen(key);
            if (!to_object(value, zone, &kv->val)) return 0;
        }
        return 1;
    }
    }
    return 0;
}

/* Label image bytes for a set_rois request: `pixels` in a label dtype, little-endian. */
static unsigned char *label_bytes(const json_t *pixels, const char *dtype, size_t *size) {
    size_t itemsize = strcmp(dtype, "|u1") == 0 ? 1
                      : (strcmp(dtype, "<u2") == 0 || strcmp(dtype, "<i2") == 0) ? 2
                      : strcmp(dtype, "<i8") == 0 ? 8 : 4;
    size_t count = json_array_size(pixels);
    unsigned char *out = calloc(count ? count : 1, itemsize);
    for (size_t i = 0; out != NULL && i < count; i++) {
        integer p;
        integer_of(json_array_get(pixels, i), &p);
        uint64_t v = p.negative ? (uint64_t)p.i : p.u; /* two's complement */
        for (size_t b = 0; b < itemsize; b++) out[i * itemsize + b] = (unsigned char)(v >> (8 * b));
    }
    *size = count * itemsize;
    return out;
}

/* The decoded `o` equals the JSON `j` (maps in the same order). `pixels`: the vector's
 * pixels, for the "<bin: pixels>" stand-in of control_set_rois. */
static int same(const msgpack_object *o, const json_t *j, const char *path, const json_t *vector) {
    char sub[512];
    integer n;
    if (integer_of(j, &n)) {
        if (n.negative)
            return (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 == n.i) ||
                   failf("%s: expected a negative integer%s", path, NULL);
        return (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 == n.u) ||
               failf("%s: expected a non-negative integer%s", path, NULL);
    }
    switch (json_typeof(j)) {
    case JSON_NULL: return o->type == MSGPACK_OBJECT_NIL || failf("%s: expected nil%s", path, NULL);
    case JSON_TRUE:
    case JSON_FALSE:
        return (o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean == json_is_true(j)) ||
               failf("%s: expected a bool%s", path, NULL);
    case JSON_INTEGER: return 0; /* handled above */
    case JSON_REAL:
        return ((o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32) &&
                o->via.f64 == json_real_value(j)) ||
               failf("%s: expected a float%s", path, NULL);
    case JSON_STRING: {
        const char *s = json_string_value(j);
        size_t len = json_string_length(j);
        if (strcmp(s, "<bin: pixels>") == 0) {
            const char *dtype = str_of(json_object_get(vector, "dtype"));
            size_t size;
            unsigned char *bytes = label_bytes(json_object_get(vector, "pixels"), dtype, &size);
            int ok = o->type == MSGPACK_OBJECT_BIN && o->via.bin.size == size &&
                     memcmp(o->via.bin.ptr, bytes, size) == 0;
            free(bytes);
            return ok || failf("%s: expected bin holding the pixels%s", path, NULL);
        }
        return (o->type == MSGPACK_OBJECT_STR && o->via.str.size == len &&
                memcmp(o->via.str.ptr, s, len) == 0) ||
               failf("%s: expected the str \"%s\"", path, s);
    }
    case JSON_ARRAY:
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != json_array_size(j))
            return failf("%s: expected an array of the listed length%s", path, NULL);
        for (size_t i = 0; i < json_array_size(j); i++) {
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            if (!same(&o->via.array.ptr[i], json_array_get(j, i), sub, vector)) return 0;
        }
        return 1;
    case JSON_OBJECT: {
        size_t i = 0;
        const char *key;
        json_t *value;
        if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size != json_object_size(j))
            return failf("%s: expected a map of the listed size%s", path, NULL);
        json_object_foreach((json_t *)j, key, value) { /* in file order */
            const msgpack_object *got = &o->via.map.ptr[i].key;
            snprintf(sub, sizeof sub, "%s.%s", path, key);
            if (got->type != MSGPACK_OBJECT_STR || got->via.str.size != strlen(key) ||
                memcmp(got->via.str.ptr, key, got->via.str.size) != 0)
                return failf("%s: key missing or out of order%s", sub, NULL);
            if (!same(&o->via.map.ptr[i].val, value, sub, vector)) return 0;
            i++;
        }
        return 1;
    }
    }
    return 0;
}

static int same_bytes(const msgpack_sbuffer *got, const ddn_part *want, const char *what) {
    if (got->size == want->size && memcmp(got->data, want->data, want->size) == 0) return 1;
    return failf("%s: re-encoded bytes differ from the file%s", what, NULL);
}

/* ------------------------------------------------------------------ payload checks */

static int check_pixels(const ddn_message *msg, const json_t *pixels) {
    const void *data = ddn_message_pixels(msg);
    ddn_dtype dtype = ddn_message_dtype(msg);
    size_t n = (size_t)ddn_message_height(msg) * ddn_message_width(msg);
    if (!json_is_array(pixels) || json_array_size(pixels) != n)
        return failf("pixels: expected %s values%s", "height*width", NULL);
    for (size_t i = 0; i < n; i++) {
        double got = ddn_load_double(data, dtype, i);
        const json_t *p = json_array_get(pixels, i);
        integer k;
        int ok;
        if (integer_of(p, &k))
            ok = k.negative ? got == (double)k.i : got == (double)k.u;
        else if (json_is_string(p))
            ok = is_str(p, "NaN")        ? isnan(got)
                 : is_str(p, "Infinity") ? isinf(got) && got > 0
                                         : isinf(got) && got < 0;
        else
            ok = got == json_real_value(p);
        if (!ok) return failf("pixels: a value differs%s%s", NULL, NULL);
    }
    return 1;
}

static int check_payload(const ddn_message *msg, const json_t *v) {
    const json_t *dtype = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
    if (json_is_null(dtype)) return 1;
    const char *got = ddn_dtype_str(ddn_message_dtype(msg));
    if (got == NULL || strcmp(got, str_of(dtype)) != 0)
        return failf("dtype: expected %s%s", str_of(dtype), NULL);
    if (ddn_message_height(msg) != uint_of(json_array_get(shape, 0)) ||
        ddn_message_width(msg) != uint_of(json_array_get(shape, 1)))
        return failf("shape differs%s%s", NULL, NULL);
    if (ddn_message_payload_size(msg) != uint_of(json_object_get(v, "payload_bytes")))
        return failf("payload_bytes differs%s%s", NULL, NULL);
    char hex[65];
    if (!sha256_hex(ddn_message_pixels(msg), ddn_message_payload_size(msg), hex))
        return failf("payload_sha256: the digest failed%s%s", NULL, NULL);
    if (strcmp(hex, str_of(json_object_get(v, "payload_sha256"))) != 0)
        return failf("payload_sha256: got %s%s", hex, NULL);
    const json_t *pixels = json_object_get(v, "pixels");
    return json_is_null(pixels) || check_pixels(msg, pixels);
}

/* ------------------------------------------------------------------ re-encoding */

/* Through the typed frame/start/end API, for input headers it can express. Returns 1
 * when it matched or the header needs the generic encoder (no "kind"). */
static int reencode_input(const json_t *header, const message_file *m, msgpack_zone *zone) {
    const json_t *kind = json_object_get(header, "kind");
    const json_t *series = json_object_get(header, "series");
    const json_t *t_ns = json_object_get(header, "t_ns");
    uint64_t t_ns_value = uint_of(t_ns);
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    ddn_error err;
    ddn_status st;
    if (kind == NULL) { /* the typed encoder always writes kind: frame_kind_absent */
        msgpack_sbuffer_destroy(&out);
        return 1;
    }
    if (!is_str(kind, "frame")) {
        st = ddn_encode_mark_header(&out, str_of(kind), str_of(series), t_ns ? &t_ns_value : NULL,
                                    &err);
    } else {
        const json_t *shape = json_object_get(header, "shape");
        const json_t *meta = json_object_get(header, "meta");
        const json_t *resend = json_object_get(header, "resend");
        const char *dtype = str_of(json_object_get(header, "dtype"));
        integer index;
        integer_of(json_object_get(header, "index"), &index);
        ddn_frame frame = {
            .series = str_of(series),
            .index = index.negative ? index.i : (int64_t)index.u,
            .dtype = ddn_dtype_parse(dtype, strlen(dtype)),
            .height = (uint32_t)uint_of(json_array_get(shape, 0)),
            .width = (uint32_t)uint_of(json_array_get(shape, 1)),
            .pixels = m->parts[2].data,
            .has_t_ns = t_ns != NULL,
            .t_ns = t_ns_value,
            .resend = json_is_true(resend),
        };
        msgpack_object meta_obj, extra;
        if (meta != NULL && to_object(meta, zone, &meta_obj)) frame.meta = &meta_obj;
        /* every key the typed API has no field for goes in `extra` */
        static const char *const known[] = {"v", "kind", "series", "index", "dtype",
                                            "shape", "t_ns", "meta", "resend"};
        const char *key;
        json_t *value;
        extra.type = MSGPACK_OBJECT_MAP;
        extra.via.map.size = 0;
        extra.via.map.ptr =
            msgpack_zone_malloc(zone, (json_object_size(header) + 1) * sizeof(msgpack_object_kv));
        json_object_foreach((json_t *)header, key, value) {
            int is_known = 0;
            for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
                is_known |= strcmp(key, known[k]) == 0;
            if (is_known) continue;
            msgpack_object_kv *kv = &extra.via.map.ptr[extra.via.map.size++];
            kv->key.type = MSGPACK_OBJECT_STR;
            kv->key.via.str.ptr = key;
            kv->key.via.str.size = (uint32_t)strlen(key);
            to_object(value, zone, &kv->val);
        }
        if (extra.via.map.size > 0) frame.extra = &extra;
        st = ddn_encode_frame_header(&out, &frame, NULL, &err);
    }
    int ok = st == DDN_OK ? same_bytes(&out, &m->parts[1], "typed encoder")
                          : failf("typed encoder refused: %s%s", err.message, NULL);
    msgpack_sbuffer_destroy(&out);
    return ok;
}

/* A control request through the command's own encoder. */
static int reencode_control(const json_t *v, const json_t *request, const message_file *m) {
    const json_t *cmd = json_object_get(request, "cmd");
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    ddn_error err;
    ddn_status st;
    if (is_str(cmd, "load_model")) {
        st = ddn_encode_load_model(&out, str_of(json_object_get(request, "path")), &err);
    } else if (is_str(cmd, "end_series")) {
        st = ddn_encode_end_series(&out, str_of(json_object_get(request, "series")), &err);
    } else if (is_str(cmd, "set_rois")) {
        const json_t *series = json_object_get(request, "series");
        const json_t *labels = json_object_get(request, "labels");
        const char *name = json_is_string(series) ? str_of(series) : NULL;
        ddn_set_rois_options options = {
            .fit = json_is_true(json_object_get(request, "fit")),
            .source = str_of(json_object_get(request, "source")), /* NULL when absent */
        };
        if (json_is_null(labels)) {
            st = ddn_encode_set_rois_with(&out, name, NULL, 0, 0, NULL, &options, &err);
        } else {
            const json_t *shape = json_object_get(request, "shape");
            const char *dtype = str_of(json_object_get(request, "dtype"));
            size_t n;
            unsigned char *bytes = label_bytes(json_object_get(v, "pixels"), dtype, &n);
            st = ddn_encode_set_rois_with(&out, name, dtype,
                                          (uint32_t)uint_of(json_array_get(shape, 0)),
                                          (uint32_t)uint_of(json_array_get(shape, 1)), bytes,
                                          &options, &err);
            free(bytes);
        }
    } else {
        st = json_object_size(request) == 1 ? ddn_encode_request(&out, str_of(cmd), &err)
                                            : DDN_E_ARGUMENT;
    }
    int ok = st == DDN_OK ? same_bytes(&out, &m->parts[0], "request encoder")
                          : failf("request encoder refused%s%s", NULL, NULL);
    msgpack_sbuffer_destroy(&out);
    return ok;
}

/* ------------------------------------------------------------------ one vector */

static ddn_limits limits_of(const json_t *root, const json_t *v) {
    ddn_limits limits = ddn_default_limits();
    const json_t *sources[2] = {json_object_get(root, "limits"), json_object_get(v, "limits")};
    for (int s = 0; s < 2; s++) {
        const json_t *l = sources[s], *x;
        if (l == NULL) continue;
        if ((x = json_object_get(l, "max_header_bytes"))) limits.max_header_bytes = uint_of(x);
        if ((x = json_object_get(l, "max_meta_bytes"))) limits.max_meta_bytes = uint_of(x);
        if ((x = json_object_get(l, "max_side"))) limits.max_side = (uint32_t)uint_of(x);
        if ((x = json_object_get(l, "max_payload_bytes"))) limits.max_payload_bytes = uint_of(x);
    }
    return limits;
}

static int check_vector(const char *dir, const json_t *root, const json_t *v) {
    message_file m;
    if (!load_message(dir, str_of(json_object_get(v, "file")), &m)) {
        free(m.data);
        return 0;
    }
    int ok = 1;
    if (m.nparts != uint_of(json_object_get(v, "parts")))
        ok = failf("expected %s parts%s", "the listed", NULL);
    const json_t *header = json_object_get(v, "header");
    const json_t *direction = json_object_get(v, "direction");
    int valid = json_is_true(json_object_get(v, "valid"));
    int canonical = json_is_true(json_object_get(v, "canonical"));
    ddn_limits limits = limits_of(root, v);
    ddn_message *msg = ddn_message_new();
    msgpack_zone *zone = msgpack_zone_new(4096);
    ddn_error err = {DDN_OK, ""};

    if (ok && is_str(direction, "control")) {
        ok = ddn_message_decode_map(msg, m.parts[0].data, m.parts[0].size, &err) == DDN_OK
                 ? same(ddn_message_header(msg), header, "request", v)
                 : failf("decode failed: %s%s", err.message, NULL);
        if (ok && canonical) ok = reencode_control(v, header, &m);
    } else if (ok && valid) {
        int strict = is_str(direction, "input");
        ddn_status st = ddn_message_decode(msg, m.parts, m.nparts, strict, &limits, &err);
        if (st != DDN_OK) ok = failf("decode failed: %s%s", err.message, NULL);
        size_t topic_len;
        const char *topic = ok ? ddn_message_topic(msg, &topic_len) : NULL;
        const json_t *want_topic = json_object_get(v, "topic");
        if (ok && (topic_len != json_string_length(want_topic) ||
                   memcmp(topic, str_of(want_topic), topic_len) != 0))
            ok = failf("topic differs from %s%s", str_of(want_topic), NULL);
        if (ok) ok = same(ddn_message_header(msg), header, "header", v);
        if (ok) ok = check_payload(msg, v);
        if (ok && canonical) { /* generic encoder: every header */
            msgpack_object obj;
            msgpack_sbuffer out;
            msgpack_sbuffer_init(&out);
            ok = to_object(header, zone, &obj) && ddn_encode_header(&out, &obj, &err) == DDN_OK
                     ? same_bytes(&out, &m.parts[1], "canonical encoder")
                     : failf("canonical encoder refused: %s%s", err.message, NULL);
            msgpack_sbuffer_destroy(&out);
        }
        if (ok && canonical && strict) ok = reencode_input(header, &m, zone);
    } else if (ok) {
        ddn_status st = ddn_message_decode(msg, m.parts, m.nparts, 1, &limits, &err);
        const char *want = str_of(json_object_get(v, "reject_reason"));
        if (st == DDN_OK) ok = failf("accepted; expected rejection %s%s", want, NULL);
        else if (strcmp(ddn_reason_code(st), want) != 0)
            ok = failf("rejected as %s, expected %s", ddn_reason_code(st), want);
    }
    msgpack_zone_free(zone);
    ddn_message_free(msg);
    free(m.data);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s VECTORS_DIR\n", argv[0]);
        return 2;
    }
    char path[4096], error[256];
    snprintf(path, sizeof path, "%s/vectors.json", argv[1]);
    size_t size;
    unsigned char *text = read_all(path, &size);
    if (text == NULL) {
        fprintf(stderr, "cannot read %s\n", path);
        return 2;
    }
    json_t *root = load_vectors_json((const char *)text, size, error, sizeof error);
    free(text);
    if (root == NULL) {
        fprintf(stderr, "%s: %s\n", path, error);
        return 2;
    }
    const json_t *vectors = json_object_get(root, "vectors");
    if (!json_is_array(vectors) || json_array_size(vectors) == 0) {
        fprintf(stderr, "%s: no vectors\n", path);
        json_decref(root);
        return 2;
    }
    int passed = 0, failed = 0;
    for (size_t i = 0; i < json_array_size(vectors); i++) {
        const json_t *v = json_array_get(vectors, i);
        why[0] = '\0';
        if (check_vector(argv[1], root, v)) {
            passed++;
            printf("ok      %s\n", str_of(json_object_get(v, "name")));
        } else {
            failed++;
            printf("FAILED  %s: %s\n", str_of(json_object_get(v, "name")), why);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    json_decref(root);
    return failed == 0 ? 0 : 1;
}
