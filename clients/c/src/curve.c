/* CURVE keys: read ZeroMQ certificate files (as `deepdenoise keys` writes them) and set
 * them on a socket before it binds or connects. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define KEY_CHARS 40
/* A certificate is a few hundred bytes; anything much bigger is not one. */
#define MAX_FILE 65536

static const char z85_chars[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

static ddn_status curve_available(ddn_error *err) {
    if (!zmq_has("curve"))
        return ddn__fail(err, DDN_E_ZMQ, "this libzmq is built without CURVE "
                                         "(zmq_has(\"curve\") is false): rebuild it with "
                                         "libsodium");
    return DDN_OK;
}

/* `what` of `where` must be 40 Z85 characters. */
static ddn_status check_key(const char *key, const char *what, const char *where,
                            ddn_error *err) {
    size_t n = strlen(key);
    if (n != KEY_CHARS)
        return ddn__fail(err, DDN_E_ARGUMENT,
                         "%s: %s is %zu characters, expected %d Z85 characters", where, what,
                         n, KEY_CHARS);
    for (size_t i = 0; i < n; i++)
        if (strchr(z85_chars, key[i]) == NULL)
            return ddn__fail(err, DDN_E_ARGUMENT, "%s: %s holds '%c', not a Z85 character",
                             where, what, key[i]);
    uint8_t binary[32];
    if (zmq_z85_decode(binary, key) == NULL) /* a group above 2^32 */
        return ddn__fail(err, DDN_E_ARGUMENT, "%s: %s is not valid Z85", where, what);
    return DDN_OK;
}

/*
 * The value of `name` (public-key or secret-key) in ZPL text: a line `name = "value"`
 * (quotes optional), at any indentation. Copies at most `cap`-1 characters (a longer
 * value then still fails the length check); 0 when the name is not there.
 */
static int zpl_value(const char *text, const char *name, char *out, size_t cap) {
    size_t name_len = strlen(name);
    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *next = strchr(line, '\n');
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (strncmp(p, name, name_len) == 0) {
            p += name_len;
            while (*p == ' ' || *p == '\t') p++;
            if (*p == '=') {
                p++;
                while (*p == ' ' || *p == '\t') p++;
                char quote = (*p == '"' || *p == '\'') ? *p++ : '\0';
                size_t n = 0;
                while (p[n] != '\0' && p[n] != '\n' && p[n] != '\r' &&
                       (quote ? p[n] != quote : (p[n] != ' ' && p[n] != '\t' && p[n] != '#')))
                    n++;
                if (n >= cap) n = cap - 1;
                memcpy(out, p, n);
                out[n] = '\0';
                return 1;
            }
        }
        line = next != NULL ? next + 1 : NULL;
    }
    return 0;
}

/* Read a whole (small) text file into `buf`. */
static ddn_status read_text(const char *path, char *buf, size_t cap, ddn_error *err) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return ddn__fail(err, DDN_E_ARGUMENT, "%s: cannot read the CURVE key file (%s)", path,
                         strerror(errno));
    size_t n = fread(buf, 1, cap - 1, f);
    int bad = ferror(f), more = !bad && fgetc(f) != EOF;
    fclose(f);
    if (bad)
        return ddn__fail(err, DDN_E_ARGUMENT, "%s: cannot read the CURVE key file", path);
    if (more || memchr(buf, '\0', n) != NULL)
        return ddn__fail(err, DDN_E_ARGUMENT,
                         "%s: not a CURVE key file (expected a small text certificate made "
                         "by `deepdenoise keys NAME`)", path);
    buf[n] = '\0';
    return DDN_OK;
}

/* The public key (and with `secret` the secret key) of the certificate at `path`. */
static ddn_status load_file(const char *path, char *public_key, char *secret_key,
                            ddn_error *err) {
    static char text[MAX_FILE]; /* not on the stack; keys are loaded once, at start-up */
    ddn_status st = read_text(path, text, sizeof text, err);
    /* Values are copied into 64 bytes so that a too-long one is reported as such. */
    char value[64];
    if (st == DDN_OK && !zpl_value(text, "public-key", value, sizeof value))
        st = ddn__fail(err, DDN_E_ARGUMENT,
                       "%s holds no public-key: expected a CURVE certificate made by "
                       "`deepdenoise keys NAME`", path);
    if (st == DDN_OK && (st = check_key(value, "public-key", path, err)) == DDN_OK)
        memcpy(public_key, value, KEY_CHARS + 1);
    if (st == DDN_OK && secret_key != NULL) {
        if (!zpl_value(text, "secret-key", value, sizeof value))
            st = ddn__fail(err, DDN_E_ARGUMENT,
                           "%s holds no secret-key: give the NAME.key_secret file, not the "
                           "public NAME.key", path);
        else if ((st = check_key(value, "secret-key", path, err)) == DDN_OK)
            memcpy(secret_key, value, KEY_CHARS + 1);
    }
    memset(text, 0, sizeof text); /* do not leave the secret key lying around */
    memset(value, 0, sizeof value);
    return st;
}

ddn_status ddn_curve_keys_load(ddn_curve_keys *keys, const char *secret_file,
                               const char *server_file, ddn_error *err) {
    if (keys == NULL || secret_file == NULL)
        return ddn__fail(err, DDN_E_ARGUMENT,
                         "expected the keys to fill and a NAME.key_secret file");
    memset(keys, 0, sizeof *keys);
    ddn_status st = curve_available(err);
    if (st == DDN_OK) st = load_file(secret_file, keys->public_key, keys->secret_key, err);
    if (st == DDN_OK && server_file != NULL)
        st = load_file(server_file, keys->server_key, NULL, err); /* a secret file works too */
    if (st != DDN_OK) {
        memset(keys, 0, sizeof *keys);
        return st;
    }
    ddn__ok(err);
    return DDN_OK;
}

ddn_status ddn__curve_apply(void *socket, const ddn_curve_keys *keys, int bind,
                            ddn_error *err) {
    if (keys == NULL) return DDN_OK;
    ddn_status st = curve_available(err);
    /* The keys may have been filled by hand: check them as the loader does. */
    if (st == DDN_OK) st = check_key(keys->public_key, "public_key", "CURVE keys", err);
    if (st == DDN_OK) st = check_key(keys->secret_key, "secret_key", "CURVE keys", err);
    if (st == DDN_OK && !bind) {
        if (keys->server_key[0] == '\0')
            return ddn__fail(err, DDN_E_ARGUMENT,
                             "expected the service's public key (service.key) to connect: "
                             "ddn_curve_keys_load(keys, secret_file, server_file, err)");
        st = check_key(keys->server_key, "server_key", "CURVE keys", err);
    }
    if (st != DDN_OK) return st;
    int one = 1;
    /* Z85 keys go in as 41 bytes, NUL included (zmq_setsockopt's documented form). */
    if (zmq_setsockopt(socket, ZMQ_CURVE_PUBLICKEY, keys->public_key, KEY_CHARS + 1) != 0 ||
        zmq_setsockopt(socket, ZMQ_CURVE_SECRETKEY, keys->secret_key, KEY_CHARS + 1) != 0 ||
        (bind ? zmq_setsockopt(socket, ZMQ_CURVE_SERVER, &one, sizeof one)
              : zmq_setsockopt(socket, ZMQ_CURVE_SERVERKEY, keys->server_key,
                               KEY_CHARS + 1)) != 0)
        return ddn__zmq_fail(err, "setting the CURVE keys");
    return DDN_OK;
}
