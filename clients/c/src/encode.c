/* Canonical header encoding (PROTOCOL.md section 4) and validation before sending. */
#define _POSIX_C_SOURCE 200809L /* strnlen */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The canonical order of the top-level keys; other keys follow in their given order. */
static const char *const canonical_keys[] = {
    "v",    "kind",   "series", "index", "dtype",     "shape",
    "t_ns", "meta",   "resend", "model", "t_recv_ns", "t_done_ns",
};
#define NCANONICAL (sizeof canonical_keys / sizeof canonical_keys[0])

static int str_is(const msgpack_object *o, const char *s) {
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           (n == 0 || memcmp(o->via.str.ptr, s, n) == 0);
}

static void pack_cstr(msgpack_packer *pk, const char *s) {
    size_t n = strlen(s);
    msgpack_pack_str_with_body(pk, s, n);
}

void ddn_pack_value(msgpack_packer *pk, const msgpack_object *o) {
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: msgpack_pack_nil(pk); break;
    case MSGPACK_OBJECT_BOOLEAN:
        if (o->via.boolean) msgpack_pack_true(pk);
        else msgpack_pack_false(pk);
        break;
    /* msgpack-c picks the smallest form for both, unsigned ones for n >= 0. */
    case MSGPACK_OBJECT_POSITIVE_INTEGER: msgpack_pack_uint64(pk, o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: msgpack_pack_int64(pk, o->via.i64); break;
    /* Canonical floats are float64, whatever width they arrived in. */
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: msgpack_pack_double(pk, o->via.f64); break;
    case MSGPACK_OBJECT_STR: msgpack_pack_str_with_body(pk, o->via.str.ptr, o->via.str.size); break;
    case MSGPACK_OBJECT_BIN: msgpack_pack_bin_with_body(pk, o->via.bin.ptr, o->via.bin.size); break;
    case MSGPACK_OBJECT_ARRAY:
        msgpack_pack_array(pk, o->via.array.size);
        for (uint32_t i = 0; i < o->via.array.size; i++) ddn_pack_value(pk, &o->via.array.ptr[i]);
        break;
    case MSGPACK_OBJECT_MAP:
        msgpack_pack_map(pk, o->via.map.size);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            ddn_pack_value(pk, &o->via.map.ptr[i].key);
            ddn_pack_value(pk, &o->via.map.ptr[i].val);
        }
        break;
    case MSGPACK_OBJECT_EXT:
        msgpack_pack_ext_with_body(pk, o->via.ext.ptr, o->via.ext.size, o->via.ext.type);
        break;
    }
}

/* 1 when every map key at every depth of `o` is a str. */
static int keys_are_str(const msgpack_object *o) {
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if (!keys_are_str(&o->via.array.ptr[i])) return 0;
    } else if (o->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (o->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR) return 0;
            if (!keys_are_str(&o->via.map.ptr[i].val)) return 0;
        }
    }
    return 1;
}

static int is_canonical_key(const msgpack_object *key) {
    for (size_t k = 0; k < NCANONICAL; k++)
        if (str_is(key, canonical_keys[k])) return 1;
    return 0;
}

ddn_status ddn_encode_header(msgpack_sbuffer *out, const msgpack_object *map, ddn_error *err) {
    if (out == NULL || map == NULL || map->type != MSGPACK_OBJECT_MAP)
        return ddn__fail(err, DDN_E_ARGUMENT, "expected a msgpack map as the header");
    if (!keys_are_str(map))
        return ddn__fail(err, DDN_E_HEADER_DECODE, "header: every map key must be a str");
    uint32_t n = map->via.map.size;
    const msgpack_object_kv *kv = map->via.map.ptr;
    uint32_t *order = malloc((n ? n : 1) * sizeof *order);
    if (order == NULL) return ddn__fail(err, DDN_E_NOMEM, "out of memory");
    uint32_t count = 0;
    /* Known keys first, in canonical order (a repeated one: its last value)... */
    for (size_t k = 0; k < NCANONICAL; k++) {
        int found = -1;
        for (uint32_t i = 0; i < n; i++)
            if (str_is(&kv[i].key, canonical_keys[k])) found = (int)i;
        if (found >= 0) order[count++] = (uint32_t)found;
    }
    /* ...then the others as given. */
    for (uint32_t i = 0; i < n; i++)
        if (!is_canonical_key(&kv[i].key)) order[count++] = i;

    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, count);
    for (uint32_t j = 0; j < count; j++) {
        ddn_pack_value(&pk, &kv[order[j]].key);
        ddn_pack_value(&pk, &kv[order[j]].val);
    }
    free(order);
    ddn__ok(err);
    return DDN_OK;
}

/* ------------------------------------------------------------------ frames */

static msgpack_object str_object(const char *s) {
    msgpack_object o;
    o.type = MSGPACK_OBJECT_STR;
    o.via.str.ptr = s;
    o.via.str.size = (uint32_t)strlen(s);
    return o;
}

static msgpack_object uint_object(uint64_t u) {
    msgpack_object o;
    o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    o.via.u64 = u;
    return o;
}

static ddn_status check_series(const char *series, ddn_error *err) {
    if (series == NULL || !ddn_series_valid(series, strnlen(series, DDN_MAX_SERIES + 1)))
        return ddn__fail(err, DDN_E_SERIES,
                         "expected a series id of 1-64 characters from [A-Za-z0-9._-], not "
                         "starting with '.', got \"%.80s\"",
                         series ? series : "(null)");
    return DDN_OK;
}

static ddn_status check_t_ns(uint64_t t_ns, ddn_error *err) {
    if (t_ns > DDN_MAX_T_NS)
        return ddn__fail(err, DDN_E_T_NS, "expected t_ns 0..2**63-1 (Unix ns), got %llu",
                         (unsigned long long)t_ns);
    return DDN_OK;
}

/* Levels of maps and arrays a header may nest, its own map the first (PROTOCOL.md): the
 * service rejects a deeper one (header_decode), so it is refused before sending. */
#define MAX_HEADER_LEVELS 16

/* Levels of maps and arrays in `o` (a scalar: 0), counted no further than `limit`
 * (a container below that counts 1: enough to say it is too deep). */
static unsigned nesting_levels(const msgpack_object *o, unsigned limit) {
    unsigned deepest = 0;
    if (o->type != MSGPACK_OBJECT_ARRAY && o->type != MSGPACK_OBJECT_MAP) return 0;
    if (limit == 0) return 1;
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            unsigned n = nesting_levels(&o->via.array.ptr[i], limit - 1);
            if (n > deepest) deepest = n;
        }
    } else if (o->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            unsigned n = nesting_levels(&o->via.map.ptr[i].val, limit - 1);
            if (n > deepest) deepest = n;
        }
    }
    return deepest + 1;
}

/* The canonical size of `meta`, which must be a map with str keys at every depth. */
static ddn_status check_meta(const msgpack_object *meta, const ddn_limits *limits,
                             ddn_error *err) {
    if (meta->type != MSGPACK_OBJECT_MAP)
        return ddn__fail(err, DDN_E_META, "expected meta as a map");
    if (!keys_are_str(meta)) return ddn__fail(err, DDN_E_META, "meta: map keys must be str");
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
    unsigned levels = 1 + nesting_levels(meta, MAX_HEADER_LEVELS); /* the header's map */
    if (levels > MAX_HEADER_LEVELS)
        return ddn__fail(err, DDN_E_HEADER_DECODE,
                         "expected a header nested at most %d levels deep, meta makes it more",
                         MAX_HEADER_LEVELS);
    return DDN_OK;
}

ddn_status ddn_encode_frame_header(msgpack_sbuffer *out, const ddn_frame *f,
                                   const ddn_limits *limits, ddn_error *err) {
    ddn_limits defaults = ddn_default_limits();
    if (limits == NULL) limits = &defaults;
    if (out == NULL || f == NULL) return ddn__fail(err, DDN_E_ARGUMENT, "out and frame needed");
    ddn_status st = check_series(f->series, err);
    if (st != DDN_OK) return st;
    if (f->has_t_ns && (st = check_t_ns(f->t_ns, err)) != DDN_OK) return st;
    if (f->meta != NULL && (st = check_meta(f->meta, limits, err)) != DDN_OK) return st;
    if (f->index < 0 || f->index > DDN_MAX_INDEX)
        return ddn__fail(err, DDN_E_INDEX, "expected index 0..2**40-1, got %lld",
                         (long long)f->index);
    const char *dtype = ddn_dtype_str(f->dtype);
    if (dtype == NULL)
        return ddn__fail(err, DDN_E_DTYPE, "expected dtype DDN_U1, DDN_U2, DDN_I2 or DDN_F4 "
                                           "(|u1, <u2, <i2, <f4), got %d", (int)f->dtype);
    if (f->height < 1 || f->width < 1 || f->height > limits->max_side ||
        f->width > limits->max_side)
        return ddn__fail(err, DDN_E_SHAPE, "expected shape [height, width], each 1..%u, got "
                                           "[%u, %u]", limits->max_side, f->height, f->width);
    uint64_t nbytes = (uint64_t)f->height * f->width * ddn_dtype_size(f->dtype);
    if (nbytes > limits->max_payload_bytes)
        return ddn__fail(err, DDN_E_PAYLOAD_SIZE,
                         "frame of %llu bytes exceeds the payload limit %llu",
                         (unsigned long long)nbytes,
                         (unsigned long long)limits->max_payload_bytes);
    if (f->pixels == NULL) return ddn__fail(err, DDN_E_ARGUMENT, "frame has no pixels");
    uint32_t nextra = 0;
    if (f->extra != NULL) {
        if (f->extra->type != MSGPACK_OBJECT_MAP)
            return ddn__fail(err, DDN_E_ARGUMENT, "expected extra keys as a map");
        nextra = f->extra->via.map.size;
        for (uint32_t i = 0; i < nextra; i++) {
            const msgpack_object *key = &f->extra->via.map.ptr[i].key;
            if (key->type != MSGPACK_OBJECT_STR)
                return ddn__fail(err, DDN_E_HEADER_DECODE, "extra keys must be str");
            if (is_canonical_key(key))
                return ddn__fail(err, DDN_E_ARGUMENT, "extra key \"%.*s\" is a protocol key",
                                 (int)key->via.str.size, key->via.str.ptr);
        }
    }

    /* Build the header as a msgpack_object and let the canonical encoder order it. */
    msgpack_object shape_items[2] = {uint_object(f->height), uint_object(f->width)};
    msgpack_object_kv *kv = malloc((9 + nextra) * sizeof *kv);
    if (kv == NULL) return ddn__fail(err, DDN_E_NOMEM, "out of memory");
    uint32_t n = 0;
    kv[n].key = str_object("v"), kv[n++].val = uint_object(DDN_PROTOCOL_VERSION);
    kv[n].key = str_object("kind"), kv[n++].val = str_object("frame");
    kv[n].key = str_object("series"), kv[n++].val = str_object(f->series);
    kv[n].key = str_object("index"), kv[n++].val = uint_object((uint64_t)f->index);
    kv[n].key = str_object("dtype"), kv[n++].val = str_object(dtype);
    kv[n].key = str_object("shape");
    kv[n].val.type = MSGPACK_OBJECT_ARRAY;
    kv[n].val.via.array.size = 2;
    kv[n++].val.via.array.ptr = shape_items;
    if (f->has_t_ns) kv[n].key = str_object("t_ns"), kv[n++].val = uint_object(f->t_ns);
    if (f->meta != NULL) kv[n].key = str_object("meta"), kv[n++].val = *f->meta;
    if (f->resend) {
        kv[n].key = str_object("resend");
        kv[n].val.type = MSGPACK_OBJECT_BOOLEAN;
        kv[n++].val.via.boolean = true;
    }
    for (uint32_t i = 0; i < nextra; i++) kv[n++] = f->extra->via.map.ptr[i];
    msgpack_object header;
    header.type = MSGPACK_OBJECT_MAP;
    header.via.map.size = n;
    header.via.map.ptr = kv;

    size_t start = out->size;
    st = ddn_encode_header(out, &header, err);
    free(kv);
    if (st != DDN_OK) return st;
    if (out->size - start > limits->max_header_bytes) {
        size_t size = out->size - start;
        out->size = start;
        return ddn__fail(err, DDN_E_HEADER_SIZE, "header is %zu bytes, limit %zu", size,
                         limits->max_header_bytes);
    }
    return DDN_OK;
}

ddn_status ddn_encode_mark_header(msgpack_sbuffer *out, const char *kind, const char *series,
                                  const uint64_t *t_ns, ddn_error *err) {
    if (out == NULL || kind == NULL || (strcmp(kind, "start") != 0 && strcmp(kind, "end") != 0))
        return ddn__fail(err, DDN_E_KIND, "expected kind \"start\" or \"end\"");
    ddn_status st = check_series(series, err);
    if (st != DDN_OK) return st;
    if (t_ns != NULL && (st = check_t_ns(*t_ns, err)) != DDN_OK) return st;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, t_ns != NULL ? 4 : 3);
    pack_cstr(&pk, "v");
    msgpack_pack_uint64(&pk, DDN_PROTOCOL_VERSION);
    pack_cstr(&pk, "kind");
    pack_cstr(&pk, kind);
    pack_cstr(&pk, "series");
    pack_cstr(&pk, series);
    if (t_ns != NULL) {
        pack_cstr(&pk, "t_ns");
        msgpack_pack_uint64(&pk, *t_ns);
    }
    ddn__ok(err);
    return DDN_OK;
}

/* ------------------------------------------------------------------ control requests */

ddn_status ddn_encode_request(msgpack_sbuffer *out, const char *cmd, ddn_error *err) {
    if (out == NULL || cmd == NULL) return ddn__fail(err, DDN_E_ARGUMENT, "out and cmd needed");
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    pack_cstr(&pk, "cmd");
    pack_cstr(&pk, cmd);
    ddn__ok(err);
    return DDN_OK;
}

/* A request of one string argument, {"cmd": cmd, key: value} (arguments checked). */
static ddn_status encode_command_with(msgpack_sbuffer *out, const char *cmd, const char *key,
                                      const char *value, ddn_error *err) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pack_cstr(&pk, "cmd");
    pack_cstr(&pk, cmd);
    pack_cstr(&pk, key);
    pack_cstr(&pk, value);
    ddn__ok(err);
    return DDN_OK;
}

ddn_status ddn_encode_load_model(msgpack_sbuffer *out, const char *path, ddn_error *err) {
    if (out == NULL || path == NULL || path[0] == '\0')
        return ddn__fail(err, DDN_E_ARGUMENT, "load_model needs a model path");
    return encode_command_with(out, "load_model", "path", path, err);
}

ddn_status ddn_encode_end_series(msgpack_sbuffer *out, const char *series, ddn_error *err) {
    if (out == NULL) return ddn__fail(err, DDN_E_ARGUMENT, "end_series needs a buffer");
    ddn_status st = check_series(series, err);
    if (st != DDN_OK) return st;
    return encode_command_with(out, "end_series", "series", series, err);
}

/* Label image types set_rois takes, with their sizes. */
static size_t label_itemsize(const char *dtype) {
    static const struct {
        const char *name;
        size_t size;
    } types[] = {{"|u1", 1}, {"<u2", 2}, {"<i2", 2}, {"<u4", 4}, {"<i4", 4}, {"<i8", 8}};
    for (size_t i = 0; dtype != NULL && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dtype, types[i].name) == 0) return types[i].size;
    return 0;
}

/* A set_rois source: 1 to DDN_MAX_SOURCE characters of UTF-8, none of them a control
 * character (U+0000-U+001F, U+007F-U+009F). */
static ddn_status check_source(const char *source, ddn_error *err) {
    const unsigned char *s = (const unsigned char *)source;
    size_t n = strlen(source), chars = 0;
    const char *why = ddn__utf8_valid(s, n) ? NULL : "invalid UTF-8";
    for (size_t i = 0; why == NULL && i < n; i++) {
        /* in valid UTF-8, U+0080-U+009F are 0xc2 0x80-0x9f */
        if (s[i] < 0x20 || s[i] == 0x7f || (s[i] == 0xc2 && s[i + 1] < 0xa0))
            why = "a control character";
        chars += (s[i] & 0xc0) != 0x80; /* a character's first byte */
    }
    if (why == NULL && chars >= 1 && chars <= DDN_MAX_SOURCE) return DDN_OK;
    char count[32];
    snprintf(count, sizeof count, "%zu characters", chars);
    return ddn__fail(err, DDN_E_ARGUMENT,
                     "expected set_rois' source (where the labels came from) as 1 to %d "
                     "characters of UTF-8, none a control character, got %s",
                     DDN_MAX_SOURCE, why != NULL ? why : count);
}

ddn_status ddn_encode_set_rois(msgpack_sbuffer *out, const char *series, const char *dtype,
                               uint32_t height, uint32_t width, const void *labels,
                               ddn_error *err) {
    return ddn_encode_set_rois_with(out, series, dtype, height, width, labels, NULL, err);
}

ddn_status ddn_encode_set_rois_with(msgpack_sbuffer *out, const char *series, const char *dtype,
                                    uint32_t height, uint32_t width, const void *labels,
                                    const ddn_set_rois_options *options, ddn_error *err) {
    static const ddn_set_rois_options defaults = {0, NULL};
    if (out == NULL) return ddn__fail(err, DDN_E_ARGUMENT, "out needed");
    if (options == NULL) options = &defaults;
    ddn_status st;
    if (series != NULL && (st = check_series(series, err)) != DDN_OK) return st;
    if (options->source != NULL && (st = check_source(options->source, err)) != DDN_OK)
        return st;
    size_t itemsize = 0;
    if (labels != NULL) {
        itemsize = label_itemsize(dtype);
        if (itemsize == 0)
            return ddn__fail(err, DDN_E_DTYPE, "expected a label dtype |u1, <u2, <i2, <u4, <i4 "
                                               "or <i8, got \"%.16s\"", dtype ? dtype : "(null)");
        if (height < 1 || width < 1 || height > 16384 || width > 16384)
            return ddn__fail(err, DDN_E_SHAPE, "expected a label shape [height, width], each "
                                               "1..16384, got [%u, %u]", height, width);
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, (series != NULL) + (labels != NULL ? 4 : 2) + (options->fit != 0) +
                              (options->source != NULL));
    pack_cstr(&pk, "cmd");
    pack_cstr(&pk, "set_rois");
    if (series != NULL) {
        pack_cstr(&pk, "series");
        pack_cstr(&pk, series);
    }
    if (labels != NULL) {
        pack_cstr(&pk, "dtype");
        pack_cstr(&pk, dtype);
        pack_cstr(&pk, "shape");
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint32(&pk, height);
        msgpack_pack_uint32(&pk, width);
        pack_cstr(&pk, "labels");
        size_t nbytes = (size_t)height * width * itemsize;
        msgpack_pack_bin_with_body(&pk, labels, nbytes);
    } else {
        pack_cstr(&pk, "labels");
        msgpack_pack_nil(&pk);
    }
    if (options->fit) {
        pack_cstr(&pk, "fit");
        msgpack_pack_true(&pk);
    }
    if (options->source != NULL) {
        pack_cstr(&pk, "source");
        pack_cstr(&pk, options->source);
    }
    ddn__ok(err);
    return DDN_OK;
}
