/* CURVE keys: read ZeroMQ certificate files (as `deepdenoise keys` writes them) and set
 * them on a socket before it binds or connects. */
#define _DEFAULT_SOURCE /* explicit_bzero, where the C library has it */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <sys/stat.h>
#endif

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

void ddn__wipe(void *p, size_t n) {
#ifdef DDN_HAVE_EXPLICIT_BZERO
    explicit_bzero(p, n);
#else
    /* volatile stores: a plain memset before free or return may be dropped as dead */
    volatile unsigned char *v = p;
    while (n-- > 0) *v++ = 0;
#endif
}

/* `what` of `where` must be 40 Z85 characters that decode to a key. */
static ddn_status check_key(const char *key, const char *what, const char *where,
                            ddn_error *err) {
    size_t n = strlen(key);
    if (n != KEY_CHARS)
        return ddn__fail(err, DDN_E_ARGUMENT,
                         "%s: expected the %s as %d Z85 characters, got %zu characters", where,
                         what, KEY_CHARS, n);
    for (size_t i = 0; i < n; i++)
        if (strchr(z85_chars, key[i]) == NULL)
            return ddn__fail(err, DDN_E_ARGUMENT,
                             "%s: expected the %s as %d Z85 characters, got a character "
                             "outside Z85",
                             where, what, KEY_CHARS);
    /* Each group of 5 characters is a base-85 number that must fit 32 bits (40 '#' do
     * not); checked here, not left to zmq_setsockopt's bare "Invalid argument". */
    for (size_t g = 0; g < n; g += 5) {
        uint64_t value = 0;
        for (size_t i = g; i < g + 5; i++)
            value = value * 85 + (uint64_t)(strchr(z85_chars, key[i]) - z85_chars);
        if (value > UINT32_MAX)
            return ddn__fail(err, DDN_E_ARGUMENT, "%s: the %s is not a valid Z85 key", where,
                             what);
    }
    return DDN_OK;
}

/*
 * The value of `name` (public-key or secret-key) in ZPL text: a line `name = "value"`
 * at any indentation. Unquoted, the value runs to the end of the line less trailing
 * blanks: '#' is a Z85 character, not a comment there (as pyzmq reads it). Copies at
 * most `cap`-1 characters (a longer value then still fails the length check); 0 when
 * the name is not there.
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
                while (p[n] != '\0' && p[n] != '\n' && (!quote || p[n] != quote)) n++;
                if (!quote)
                    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
                        n--;
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
        return ddn__fail(err, DDN_E_ARGUMENT, "cannot read the CURVE key file %s: %s", path,
                         strerror(errno));
    size_t n = fread(buf, 1, cap - 1, f);
    int bad = ferror(f), more = !bad && fgetc(f) != EOF;
    fclose(f);
    if (bad)
        return ddn__fail(err, DDN_E_ARGUMENT, "cannot read the CURVE key file %s: read error",
                         path);
    if (more || memchr(buf, '\0', n) != NULL)
        return ddn__fail(err, DDN_E_ARGUMENT,
                         "%s: not a CURVE key file (expected a small text certificate made "
                         "by `deepdenoise keys NAME`)", path);
    buf[n] = '\0';
    return DDN_OK;
}

/* `path` with a leading `~` replaced by $HOME, as a shell would (into `out`). */
static const char *expand_home(const char *path, char *out, size_t cap) {
    const char *home = getenv("HOME");
    if (path[0] != '~' || (path[1] != '/' && path[1] != '\0') || home == NULL) return path;
    int n = snprintf(out, cap, "%s%s", home, path + 1);
    return n > 0 && (size_t)n < cap ? out : path;
}

/* 1 when the file's mode lets other users at it (as the service warns of its own). */
static int shared_file(const char *path) {
#ifdef _WIN32
    (void)path; /* no POSIX modes to check */
    return 0;
#else
    struct stat st;
    return stat(path, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0;
#endif
}

/* The public key (and with `secret` the secret key) of the certificate at `path`. */
static ddn_status load_file(const char *path, char *public_key, char *secret_key,
                            int *secret_shared, ddn_error *err) {
    /* Per call, on the heap: a static buffer mixed up two threads' files. */
    char *text = malloc(MAX_FILE);
    if (text == NULL) return ddn__fail(err, DDN_E_NOMEM, "out of memory");
    char expanded[4096];
    const char *file = expand_home(path, expanded, sizeof expanded);
    ddn_status st = read_text(file, text, MAX_FILE, err);
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
                           "%s holds no secret key: give the NAME.key_secret file, not the "
                           "public NAME.key", path);
        else if ((st = check_key(value, "secret-key", path, err)) == DDN_OK) {
            memcpy(secret_key, value, KEY_CHARS + 1);
            *secret_shared = shared_file(file);
        }
    }
    ddn__wipe(text, MAX_FILE); /* do not leave the secret key lying around */
    ddn__wipe(value, sizeof value);
    free(text);
    return st;
}

ddn_status ddn_curve_keys_load(ddn_curve_keys *keys, const char *secret_file,
                               const char *server_file, ddn_error *err) {
    if (keys == NULL || secret_file == NULL)
        return ddn__fail(err, DDN_E_ARGUMENT,
                         "expected the keys to fill and a NAME.key_secret file");
    memset(keys, 0, sizeof *keys);
    ddn_status st = curve_available(err);
    if (st == DDN_OK)
        st = load_file(secret_file, keys->public_key, keys->secret_key, &keys->secret_shared,
                       err);
    if (st == DDN_OK && server_file != NULL) /* a secret file works too */
        st = load_file(server_file, keys->server_key, NULL, NULL, err);
    if (st != DDN_OK) {
        ddn__wipe(keys, sizeof *keys);
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
