/* msgpack values as JSON text, for logs and the example programs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void print_string(FILE *out, const char *s, size_t n) {
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc(c, out);
        } else if (c < 0x20) {
            fprintf(out, "\\u%04x", c);
        } else {
            fputc(c, out); /* UTF-8 passes through (decoded strs are checked valid) */
        }
    }
    fputc('"', out);
}

/* The shortest of %.15g..%.17g that reads back as the same double, always with a '.' or
 * an exponent so that JSON readers see a float, not an integer. */
static void print_double(FILE *out, double v) {
    if (isnan(v)) {
        fputs("NaN", out);
        return;
    }
    if (isinf(v)) {
        fputs(v > 0 ? "Infinity" : "-Infinity", out);
        return;
    }
    char buf[40];
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(buf, sizeof buf, "%.*g", precision, v);
        if (strtod(buf, NULL) == v) break;
    }
    fputs(buf, out);
    if (strpbrk(buf, ".e") == NULL) fputs(".0", out);
}

void ddn_fprint_json(FILE *out, const msgpack_object *o) {
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: fputs("null", out); break;
    case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", out); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        fprintf(out, "%llu", (unsigned long long)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: fprintf(out, "%lld", (long long)o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: print_double(out, o->via.f64); break;
    case MSGPACK_OBJECT_STR: print_string(out, o->via.str.ptr, o->via.str.size); break;
    case MSGPACK_OBJECT_BIN: fprintf(out, "\"<bin %u bytes>\"", o->via.bin.size); break;
    case MSGPACK_OBJECT_EXT: fprintf(out, "\"<ext %u bytes>\"", o->via.ext.size); break;
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', out);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i > 0) fputs(", ", out);
            ddn_fprint_json(out, &o->via.array.ptr[i]);
        }
        fputc(']', out);
        break;
    case MSGPACK_OBJECT_MAP:
        fputc('{', out);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *key = &o->via.map.ptr[i].key;
            if (i > 0) fputs(", ", out);
            if (key->type == MSGPACK_OBJECT_STR) {
                print_string(out, key->via.str.ptr, key->via.str.size);
            } else { /* JSON keys are strings: quote whatever else it is */
                fputc('"', out);
                if (key->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                    fprintf(out, "%llu", (unsigned long long)key->via.u64);
                else
                    fputs("?", out);
                fputc('"', out);
            }
            fputs(": ", out);
            ddn_fprint_json(out, &o->via.map.ptr[i].val);
        }
        fputc('}', out);
        break;
    }
}
