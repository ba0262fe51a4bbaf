/*
 * CURVE keys, without a service:
 *   - ddn_curve_keys_load reads pyzmq's certificate files (as `deepdenoise keys` writes
 *     them) and refuses, naming the file, a missing one, a public-only one where the
 *     secret is needed and a key that is not 40 Z85 characters;
 *   - connecting without the service's key is refused before anything is sent;
 *   - over loopback TCP: a bound publisher is a CURVE server its CURVE subscriber gets
 *     frames from, and a control that timed out re-creates its socket with the keys.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <deepdenoise/deepdenoise.h>

#include "check.h"

/* Two key pairs made once with pyzmq's zmq.curve_keypair(). */
#define CLIENT_PUBLIC "/Sl=s5Bi3.Citie]5yUoQX!jlR#5ml-0%cFIRrP9"
#define CLIENT_SECRET "f67cQ>i0L$7sX/&h%MU1u]nID6:B3U1qJK}6?2bf"
#define SERVER_PUBLIC "&2K9q<&hNX)sB46GB:7muENZx5M1:ti[8:^Bs(0B"
#define SERVER_SECRET "@C7.=KcjyIqRnD&jkj+/:xWo=29KknEZL]C2=PG2"

static char dir[64];
static char paths[16][128]; /* the files written, removed at the end */
static int npaths;

/* A certificate file as pyzmq writes it (secret NULL: a public NAME.key); its path. */
static const char *write_cert(const char *name, const char *public_key,
                              const char *secret_key) {
    char *path = paths[npaths++];
    snprintf(path, sizeof paths[0], "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fprintf(f, "#   ****  Generated on 2026-01-01 00:00:00 by pyzmq  ****\n"
               "#   ZeroMQ CURVE %s Certificate\n"
               "#   Exchange securely, or use a secure mechanism to verify the contents\n"
               "\nmetadata\ncurve\n    public-key = \"%s\"\n",
            secret_key ? "**Secret**" : "Public", public_key);
    if (secret_key) fprintf(f, "    secret-key = \"%s\"\n", secret_key);
    fclose(f);
    return path;
}

static int has(const ddn_error *err, const char *text) {
    return strstr(err->message, text) != NULL;
}

static void test_load(void) {
    ddn_error err;
    ddn_curve_keys keys;
    const char *secret = write_cert("rig.key_secret", CLIENT_PUBLIC, CLIENT_SECRET);
    const char *server = write_cert("service.key", SERVER_PUBLIC, NULL);

    CHECK(ddn_curve_keys_load(&keys, secret, server, &err) == DDN_OK);
    CHECK(strcmp(keys.public_key, CLIENT_PUBLIC) == 0);
    CHECK(strcmp(keys.secret_key, CLIENT_SECRET) == 0);
    CHECK(strcmp(keys.server_key, SERVER_PUBLIC) == 0);
    CHECK(ddn_curve_keys_load(&keys, secret, NULL, &err) == DDN_OK); /* this end binds */
    CHECK(strcmp(keys.secret_key, CLIENT_SECRET) == 0 && keys.server_key[0] == '\0');

    /* the public file where the secret one is needed */
    CHECK(ddn_curve_keys_load(&keys, server, NULL, &err) == DDN_E_ARGUMENT);
    CHECK(has(&err, "service.key holds no secret key: give the NAME.key_secret file, not "
                    "the public NAME.key"));
    CHECK(keys.public_key[0] == '\0'); /* nothing half loaded */

    const char *short_key =
        write_cert("short.key_secret", CLIENT_PUBLIC, "f67cQ>i0L$7sX/&h%MU1u]nID6:B3U1qJK}6?2b");
    CHECK(ddn_curve_keys_load(&keys, short_key, NULL, &err) == DDN_E_ARGUMENT);
    CHECK(has(&err, "short.key_secret: expected the secret-key as 40 Z85 characters, got 39 "
                    "characters"));
    const char *not_z85 = write_cert("bad.key", "/Sl=s5Bi3.Citie]5yUoQX!jlR#5ml-0%cFIRrP\\", NULL);
    CHECK(ddn_curve_keys_load(&keys, secret, not_z85, &err) == DDN_E_ARGUMENT);
    CHECK(has(&err, "bad.key: expected the public-key as 40 Z85 characters, got a character "
                    "outside Z85"));
    /* 40 Z85 characters that decode to no key: '#' is 84, 84 * 85^4 + ... > 2^32 - 1 */
    const char *hashes = write_cert("hashes.key", "########################################", NULL);
    CHECK(ddn_curve_keys_load(&keys, secret, hashes, &err) == DDN_E_ARGUMENT);
    CHECK(has(&err, "hashes.key: the public-key is not a valid Z85 key"));

    char missing[128];
    snprintf(missing, sizeof missing, "%s/missing.key_secret", dir);
    CHECK(ddn_curve_keys_load(&keys, missing, server, &err) == DDN_E_ARGUMENT);
    CHECK(has(&err, "cannot read the CURVE key file ") && has(&err, "missing.key_secret: "));
    CHECK(ddn_curve_keys_load(&keys, secret, missing, &err) == DDN_E_ARGUMENT);
    CHECK(has(&err, "missing.key_secret"));
}

/* An unquoted value runs to the end of its line: '#' is a Z85 character, not a comment
 * (CLIENT_PUBLIC holds one), and trailing blanks are not part of it. */
static void test_unquoted_values(void) {
    ddn_error err;
    ddn_curve_keys keys;
    char *path = paths[npaths++];
    snprintf(path, sizeof paths[0], "%s/unquoted.key_secret", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "curve\n    public-key = %s  \r\n    secret-key = %s\t\n", CLIENT_PUBLIC,
            CLIENT_SECRET);
    fclose(f);
    CHECK(ddn_curve_keys_load(&keys, path, NULL, &err) == DDN_OK);
    CHECK(strcmp(keys.public_key, CLIENT_PUBLIC) == 0);
    CHECK(strcmp(keys.secret_key, CLIENT_SECRET) == 0);
}

/* A secret file other users may read is loaded and said (the program warns). */
static void test_secret_shared(void) {
    ddn_error err;
    ddn_curve_keys keys;
    const char *path = write_cert("shared.key_secret", CLIENT_PUBLIC, CLIENT_SECRET);
    chmod(path, 0644); /* as pyzmq's create_certificates writes it */
    CHECK(ddn_curve_keys_load(&keys, path, NULL, &err) == DDN_OK && keys.secret_shared == 1);
    chmod(path, 0600);
    CHECK(ddn_curve_keys_load(&keys, path, NULL, &err) == DDN_OK && keys.secret_shared == 0);
}

/* `~/` is the home folder, as in a shell. */
static void test_home(void) {
    ddn_error err;
    ddn_curve_keys keys;
    write_cert("home.key_secret", CLIENT_PUBLIC, CLIENT_SECRET);
    const char *home = getenv("HOME");
    char *saved = home != NULL ? strdup(home) : NULL;
    setenv("HOME", dir, 1);
    CHECK(ddn_curve_keys_load(&keys, "~/home.key_secret", NULL, &err) == DDN_OK);
    CHECK(strcmp(keys.secret_key, CLIENT_SECRET) == 0);
    if (saved != NULL) {
        setenv("HOME", saved, 1);
        free(saved);
    } else {
        unsetenv("HOME");
    }
}

/* Two threads loading different files at once each get their own keys (the loader once
 * read into a static buffer, and a thread could get the other file's secret key). */
static const char *thread_files[2];
static const char *thread_secrets[2] = {CLIENT_SECRET, SERVER_SECRET};
static atomic_int thread_wrong;

static void *load_many(void *arg) {
    int i = (int)(intptr_t)arg;
    for (int n = 0; n < 3000; n++) {
        ddn_curve_keys keys;
        ddn_error err;
        if (ddn_curve_keys_load(&keys, thread_files[i], NULL, &err) != DDN_OK ||
            strcmp(keys.secret_key, thread_secrets[i]) != 0)
            atomic_fetch_add(&thread_wrong, 1);
    }
    return NULL;
}

static void test_threads_load_their_own_keys(void) {
    thread_files[0] = write_cert("one.key_secret", CLIENT_PUBLIC, CLIENT_SECRET);
    thread_files[1] = write_cert("two.key_secret", SERVER_PUBLIC, SERVER_SECRET);
    pthread_t threads[2];
    for (intptr_t i = 0; i < 2; i++) pthread_create(&threads[i], NULL, load_many, (void *)i);
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    CHECK(atomic_load(&thread_wrong) == 0);
}

/* With keys, a PUSH send that times out asks whether the key is allowed (a refused
 * handshake is dropped without a word). */
static void test_send_timeout_hint(void *ctx) {
    ddn_error err;
    ddn_curve_keys keys = {CLIENT_PUBLIC, CLIENT_SECRET, SERVER_PUBLIC, 0};
    ddn_publisher_options options = ddn_publisher_default_options();
    options.mode = DDN_MODE_PUSH;
    options.connect = 1;
    options.timeout_ms = 50;
    options.linger_ms = 0;
    options.curve = &keys;
    ddn_publisher *pub = ddn_publisher_new(ctx, "tcp://127.0.0.1:9", &options, &err);
    CHECK(pub != NULL);
    if (pub == NULL) return;
    CHECK(ddn_publisher_start(pub, "s", NULL, &err) == DDN_E_TIMEOUT); /* nothing there */
    CHECK(has(&err, " Is this client's public key in the service's security.clients folder?"));
    ddn_publisher_close(pub);
}

static void test_connect_needs_the_server_key(void *ctx) {
    ddn_error err;
    ddn_curve_keys keys = {CLIENT_PUBLIC, CLIENT_SECRET, "", 0};
    const char *topics[] = {"denoised"};
    CHECK(ddn_subscriber_new_curve(ctx, "tcp://127.0.0.1:5556", topics, 1, &keys, &err) == NULL);
    CHECK(err.code == DDN_E_ARGUMENT && has(&err, "service.key"));
    CHECK(ddn_control_new_curve(ctx, "tcp://127.0.0.1:5557", 1000, &keys, &err) == NULL);
    CHECK(err.code == DDN_E_ARGUMENT && has(&err, "service.key"));
    ddn_curve_keys bad = {CLIENT_PUBLIC, "too short", SERVER_PUBLIC, 0};
    CHECK(ddn_control_new_curve(ctx, "tcp://127.0.0.1:5557", 1000, &bad, &err) == NULL);
    CHECK(err.code == DDN_E_ARGUMENT && has(&err, "secret_key"));
}

static void test_publisher_is_a_server(void *ctx) {
    ddn_error err;
    ddn_curve_keys server = {SERVER_PUBLIC, SERVER_SECRET, "", 0};
    ddn_curve_keys client = {CLIENT_PUBLIC, CLIENT_SECRET, SERVER_PUBLIC, 0};
    ddn_publisher_options options = ddn_publisher_default_options();
    options.curve = &server;
    ddn_publisher *pub = ddn_publisher_new(ctx, "tcp://127.0.0.1:*", &options, &err);
    CHECK(pub != NULL);
    if (pub == NULL) return;
    int is_server = 0;
    size_t len = sizeof is_server;
    zmq_getsockopt(ddn_publisher_socket(pub), ZMQ_CURVE_SERVER, &is_server, &len);
    CHECK(is_server == 1);
    const char *topics[] = {"frame"};
    ddn_subscriber *sub =
        ddn_subscriber_new_curve(ctx, ddn_publisher_endpoint(pub), topics, 1, &client, &err);
    CHECK(sub != NULL);
    /* the subscription arrives only through a completed CURVE handshake */
    CHECK(ddn_publisher_wait_for_subscriber(pub, 30000, &err) == DDN_OK);
    const uint16_t pixels[4] = {1, 2, 3, 65535};
    ddn_frame frame = {.series = "s", .index = 3, .dtype = DDN_U2, .height = 2, .width = 2,
                       .pixels = pixels};
    CHECK(ddn_publisher_send_frame(pub, &frame, &err) == DDN_OK);
    ddn_message *msg = ddn_message_new();
    CHECK(ddn_subscriber_recv(sub, msg, 30000, &err) == DDN_OK);
    CHECK(ddn_message_payload_size(msg) == sizeof pixels &&
          ddn_load_u2(ddn_message_pixels(msg), 3) == 65535);
    ddn_message_free(msg);
    ddn_subscriber_close(sub);
    ddn_publisher_close(pub);
}

/* The control test's two threads hand over with flags, not sleeps. */
static atomic_int client_gave_up;

/* A CURVE REP server: answers the first request only after the client gave up (the
 * reply is lost with the closed socket), then the next one. */
static void *responder(void *rep) {
    char buf[256];
    struct timespec tick = {0, 1000000L};
    zmq_recv(rep, buf, sizeof buf, 0);
    while (!atomic_load(&client_gave_up)) nanosleep(&tick, NULL);
    zmq_send(rep, "\x81\xa2ok\xc3", 5, 0);
    zmq_recv(rep, buf, sizeof buf, 0);
    zmq_send(rep, "\x82\xa2ok\xc3\xa6paused\xc3", 13, 0); /* {"ok": true, "paused": true} */
    return NULL;
}

static void test_control_reopens_with_the_keys(void *ctx) {
    ddn_error err;
    void *rep = zmq_socket(ctx, ZMQ_REP);
    int one = 1;
    zmq_setsockopt(rep, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(rep, ZMQ_CURVE_SECRETKEY, SERVER_SECRET, 41);
    int bound = 30000; /* a failed handshake must fail the test, not hang it */
    zmq_setsockopt(rep, ZMQ_RCVTIMEO, &bound, sizeof bound);
    CHECK(zmq_bind(rep, "tcp://127.0.0.1:*") == 0);
    char endpoint[256];
    size_t len = sizeof endpoint;
    zmq_getsockopt(rep, ZMQ_LAST_ENDPOINT, endpoint, &len);
    pthread_t thread;
    pthread_create(&thread, NULL, responder, rep);

    ddn_curve_keys keys;
    CHECK(ddn_curve_keys_load(&keys, write_cert("c.key_secret", CLIENT_PUBLIC, CLIENT_SECRET),
                              write_cert("s.key", SERVER_PUBLIC, NULL), &err) == DDN_OK);
    ddn_control *ctl = ddn_control_new_curve(ctx, endpoint, 3000, &keys, &err);
    memset(&keys, 0, sizeof keys); /* the control keeps its own copy */
    CHECK(ctl != NULL);
    ddn_message *reply = ddn_message_new();
    CHECK(ddn_control_status(ctl, reply, &err) == DDN_E_TIMEOUT);
    CHECK(has(&err, " Is this client's public key in the service's security.clients folder?"));
    atomic_store(&client_gave_up, 1);
    /* the replaced REQ socket is a CURVE client again: a plain one would get no reply */
    ddn_status st = ddn_control_pause(ctl, reply, &err);
    CHECK(st == DDN_OK);
    if (st != DDN_OK) printf("pause: %s\n", err.message);
    int paused = 0;
    CHECK(ddn_map_get_bool(ddn_message_header(reply), "paused", &paused) && paused);
    pthread_join(thread, NULL);
    ddn_message_free(reply);
    ddn_control_close(ctl);
    zmq_close(rep);
}

int main(void) {
    if (!zmq_has("curve")) {
        ddn_error err;
        ddn_curve_keys keys;
        CHECK(ddn_curve_keys_load(&keys, "any", NULL, &err) == DDN_E_ZMQ);
        CHECK(has(&err, "without CURVE"));
        printf("libzmq has no CURVE: %d passed, %d failed\n", passed, failed);
        return failed == 0 ? 0 : 1;
    }
    snprintf(dir, sizeof dir, "/tmp/ddn_curve_test_XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    void *ctx = zmq_ctx_new();
    test_load();
    test_unquoted_values();
    test_secret_shared();
    test_home();
    test_threads_load_their_own_keys();
    test_connect_needs_the_server_key(ctx);
    test_send_timeout_hint(ctx);
    test_publisher_is_a_server(ctx);
    test_control_reopens_with_the_keys(ctx);
    zmq_ctx_term(ctx);
    for (int i = 0; i < npaths; i++) unlink(paths[i]);
    rmdir(dir);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
