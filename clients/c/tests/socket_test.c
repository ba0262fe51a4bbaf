/*
 * The sockets, in one process over inproc (no service needed):
 *   - publisher (XPUB) -> subscriber: wait for the subscription, start / frame / end;
 *     the frame is sent without a copy and received without one: over inproc ZeroMQ
 *     hands the very buffer through, so the subscriber's pixel pointer is the
 *     publisher's buffer, and the free callback runs only once the message is released;
 *   - validation before sending, with the no-copy buffer still freed;
 *   - control: a request without a reply times out, the REQ socket is replaced, and the
 *     next request works; ok false is reported as DDN_E_REFUSED with the error text;
 *   - a PUSH that connects to a loopback port nothing listens on times out (frames are
 *     queued only on a live connection), then goes through once a PULL binds there;
 *   - output is decoded against the output bounds, input against the input limits;
 *   - set_rois' source is refused before sending unless it is 1 to 1024 characters.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <deepdenoise/deepdenoise.h>

#include "check.h"

static atomic_int frees;

static void count_free(void *data, void *hint) {
    (void)hint;
    free(data);
    atomic_fetch_add(&frees, 1);
}

static int str_is(const msgpack_object *map, const char *key, const char *want) {
    const char *s;
    size_t n;
    return ddn_map_get_str(map, key, &s, &n) && n == strlen(want) && memcmp(s, want, n) == 0;
}

static void test_publish_subscribe(void *ctx) {
    ddn_error err;
    const char *topics[] = {"frame"};
    ddn_publisher *pub = ddn_publisher_new(ctx, "inproc://input", NULL, &err);
    CHECK(pub != NULL);
    ddn_subscriber *sub = ddn_subscriber_new(ctx, "inproc://input", topics, 1, &err);
    CHECK(sub != NULL);
    if (pub == NULL || sub == NULL) return;
    CHECK(ddn_publisher_wait_for_subscriber(pub, 5000, &err) == DDN_OK);
    CHECK(ddn_publisher_subscribers(pub) == 1);

    ddn_message *msg = ddn_message_new();
    uint64_t t0 = 1700000000000000000ULL; /* above 2**53 */
    CHECK(ddn_publisher_start(pub, "cell-01", &t0, &err) == DDN_OK);
    CHECK(ddn_subscriber_recv(sub, msg, 5000, &err) == DDN_OK);
    CHECK(str_is(ddn_message_header(msg), "kind", "start"));
    CHECK(ddn_message_pixels(msg) == NULL && ddn_message_part_count(msg) == 2);

    const uint32_t h = 300, w = 200;
    uint16_t *buf = malloc((size_t)h * w * sizeof *buf);
    for (size_t i = 0; i < (size_t)h * w; i++) buf[i] = (uint16_t)(i * 7);
    ddn_frame frame = {.series = "cell-01", .index = 42, .dtype = DDN_U2, .height = h,
                       .width = w, .pixels = buf, .has_t_ns = 1, .t_ns = t0 + 42};
    CHECK(ddn_publisher_send_frame_nocopy(pub, &frame, count_free, NULL, &err) == DDN_OK);
    CHECK(ddn_subscriber_recv(sub, msg, 5000, &err) == DDN_OK);
    const msgpack_object *header = ddn_message_header(msg);
    uint64_t t_ns = 0;
    int64_t index = -1;
    CHECK(ddn_map_get_uint(header, "t_ns", &t_ns) && t_ns == t0 + 42);
    CHECK(ddn_map_get_int(header, "index", &index) && index == 42);
    CHECK(ddn_message_dtype(msg) == DDN_U2);
    CHECK(ddn_message_height(msg) == h && ddn_message_width(msg) == w);
    CHECK(ddn_message_payload_size(msg) == (size_t)h * w * 2);
    CHECK(ddn_load_u2(ddn_message_pixels(msg), 1234) == (uint16_t)(1234 * 7));
    /* zero copy both ways: the received view is the sent buffer itself */
    CHECK(ddn_message_pixels(msg) == ddn_message_part(msg, 2).data);
    CHECK(ddn_message_pixels(msg) == (const void *)buf);
    CHECK(atomic_load(&frees) == 0);
    CHECK(ddn_publisher_end(pub, "cell-01", NULL, &err) == DDN_OK);
    CHECK(ddn_subscriber_recv(sub, msg, 5000, &err) == DDN_OK); /* releases the frame */
    CHECK(str_is(ddn_message_header(msg), "kind", "end"));
    CHECK(atomic_load(&frees) == 1);

    /* the copying send leaves the caller's buffer alone */
    uint8_t small[6] = {1, 2, 3, 4, 5, 6};
    ddn_frame copied = {.series = "s1", .index = 0, .dtype = DDN_U1, .height = 2, .width = 3,
                        .pixels = small};
    CHECK(ddn_publisher_send_frame(pub, &copied, &err) == DDN_OK);
    CHECK(ddn_subscriber_recv(sub, msg, 5000, &err) == DDN_OK);
    CHECK(ddn_message_pixels(msg) != (const void *)small);
    CHECK(memcmp(ddn_message_pixels(msg), small, 6) == 0);

    CHECK(ddn_subscriber_recv(sub, msg, 50, &err) == DDN_E_TIMEOUT);
    ddn_message_free(msg);
    ddn_subscriber_close(sub);
    ddn_publisher_close(pub);
}

static void test_validation(void *ctx) {
    ddn_error err;
    ddn_publisher_options options = ddn_publisher_default_options();
    options.linger_ms = 0;
    ddn_publisher *pub = ddn_publisher_new(ctx, "inproc://nobody", &options, &err);
    CHECK(pub != NULL);
    if (pub == NULL) return;
    CHECK(ddn_publisher_wait_for_subscriber(pub, 50, &err) == DDN_E_TIMEOUT);
    const char *none[] = {"denoised"};
    CHECK(ddn_subscriber_new(ctx, "inproc://output", none, 0, &err) == NULL);
    CHECK(err.code == DDN_E_ARGUMENT && strstr(err.message, "at least one topic") != NULL);

    struct {
        ddn_frame frame;
        ddn_status want;
    } cases[] = {
        {{.series = "../up", .dtype = DDN_U1, .height = 1, .width = 1}, DDN_E_SERIES},
        {{.series = "s", .index = -1, .dtype = DDN_U1, .height = 1, .width = 1}, DDN_E_INDEX},
        {{.series = "s", .dtype = (ddn_dtype)9, .height = 1, .width = 1}, DDN_E_DTYPE},
        {{.series = "s", .dtype = DDN_U1, .height = 16385, .width = 1}, DDN_E_SHAPE},
        {{.series = "s", .dtype = DDN_U1, .height = 0, .width = 1}, DDN_E_SHAPE},
        {{.series = "s", .dtype = DDN_U1, .height = 1, .width = 1, .has_t_ns = 1,
          .t_ns = (uint64_t)1 << 63}, DDN_E_T_NS},
        {{.series = "s", .dtype = DDN_F4, .height = 16384, .width = 16384}, DDN_E_PAYLOAD_SIZE},
    };
    /* meta {"a": [[...[0]...]]} with 15 arrays: 17 levels with the header's own map */
    msgpack_object chain[16], meta;
    msgpack_object_kv entry;
    chain[15].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    chain[15].via.u64 = 0;
    for (int i = 14; i >= 0; i--) {
        chain[i].type = MSGPACK_OBJECT_ARRAY;
        chain[i].via.array.size = 1;
        chain[i].via.array.ptr = &chain[i + 1];
    }
    entry.key.type = MSGPACK_OBJECT_STR;
    entry.key.via.str.ptr = "a";
    entry.key.via.str.size = 1;
    entry.val = chain[0];
    meta.type = MSGPACK_OBJECT_MAP;
    meta.via.map.size = 1;
    meta.via.map.ptr = &entry;
    ddn_frame deep = {.series = "s", .dtype = DDN_U1, .height = 1, .width = 1, .meta = &meta};
    deep.pixels = malloc(1);
    int before_deep = atomic_load(&frees);
    CHECK(ddn_publisher_send_frame_nocopy(pub, &deep, count_free, NULL, &err) ==
          DDN_E_HEADER_DECODE);
    CHECK(strstr(err.message, "at most 16 levels deep") != NULL);
    CHECK(atomic_load(&frees) - before_deep == 1);
    entry.val = chain[1]; /* 14 arrays: 16 levels, the most a header may have */
    msgpack_sbuffer header;
    msgpack_sbuffer_init(&header);
    CHECK(ddn_encode_frame_header(&header, &deep, NULL, &err) == DDN_OK);
    msgpack_sbuffer_destroy(&header);
    int before = atomic_load(&frees);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cases[i].frame.pixels = malloc(1);
        ddn_status st = ddn_publisher_send_frame_nocopy(pub, &cases[i].frame, count_free,
                                                        NULL, &err);
        CHECK(st == cases[i].want);
        CHECK(err.code == st && err.message[0] != '\0');
    }
    /* the no-copy buffer is the library's: freed even though nothing was sent */
    CHECK(atomic_load(&frees) - before == (int)(sizeof cases / sizeof cases[0]));
    /* also a NULL buffer, and no frame at all: free_fn runs once (a pool's hint) */
    ddn_frame no_pixels = {.series = "s", .dtype = DDN_U1, .height = 1, .width = 1};
    int before_null = atomic_load(&frees);
    CHECK(ddn_publisher_send_frame_nocopy(pub, &no_pixels, count_free, NULL, &err) != DDN_OK);
    CHECK(ddn_publisher_send_frame_nocopy(pub, NULL, count_free, NULL, &err) != DDN_OK);
    CHECK(atomic_load(&frees) - before_null == 2);
    ddn_publisher_close(pub);
}

/* The control test's two threads hand over with these flags, not with sleeps, so that
 * a loaded machine cannot reorder them. */
static atomic_int client_gave_up, late_reply_sent;

static void wait_for(atomic_int *flag) {
    struct timespec tick = {0, 1000000L};
    while (!atomic_load(flag)) nanosleep(&tick, NULL);
}

/* The service side: answers the first request only after the client gave up (the
 * reply then goes to the closed socket and is lost), then answers the next two. */
static void *responder(void *rep) {
    char buf[256];
    zmq_recv(rep, buf, sizeof buf, 0);
    wait_for(&client_gave_up);
    zmq_send(rep, "\x81\xa2ok\xc3", 5, 0);
    atomic_store(&late_reply_sent, 1);
    zmq_recv(rep, buf, sizeof buf, 0);
    zmq_send(rep, "\x82\xa2ok\xc3\xa6paused\xc3", 13, 0); /* {"ok": true, "paused": true} */
    zmq_recv(rep, buf, sizeof buf, 0);
    zmq_send(rep, "\x82\xa2ok\xc2\xa5" "error\xa4nope", 16, 0); /* ok false, "nope" */
    return NULL;
}

static void test_control(void *ctx) {
    ddn_error err;
    void *rep = zmq_socket(ctx, ZMQ_REP);
    CHECK(zmq_bind(rep, "inproc://control") == 0);
    pthread_t thread;
    pthread_create(&thread, NULL, responder, rep);
    ddn_control *ctl = ddn_control_new(ctx, "inproc://control", 1000, &err);
    CHECK(ctl != NULL);
    ddn_message *reply = ddn_message_new();
    CHECK(ddn_control_status(ctl, reply, &err) == DDN_E_TIMEOUT);
    atomic_store(&client_gave_up, 1);
    wait_for(&late_reply_sent);
    /* the same control again: a REQ socket left without its reply would refuse to send
     * (EFSM); the replaced one works */
    CHECK(ddn_control_pause(ctl, reply, &err) == DDN_OK);
    int paused = 0;
    CHECK(ddn_map_get_bool(ddn_message_header(reply), "paused", &paused) && paused);
    CHECK(ddn_control_resume(ctl, reply, &err) == DDN_E_REFUSED);
    CHECK(strstr(err.message, "nope") != NULL);
    CHECK(ddn_map_get_bool(ddn_message_header(reply), "ok", &paused) && !paused);
    pthread_join(thread, NULL);
    ddn_message_free(reply);
    ddn_control_close(ctl);
    zmq_close(rep);
}

/* A loopback port that nothing listens on (bound, read, closed). */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
        port = ntohs(addr.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

static void test_push_connect_waits_for_the_service(void *ctx) {
    char endpoint[64];
    int port = free_port();
    CHECK(port > 0);
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    ddn_error err;
    ddn_publisher_options options = ddn_publisher_default_options();
    options.mode = DDN_MODE_PUSH;
    options.connect = 1;
    options.timeout_ms = 100;
    options.linger_ms = 0;
    ddn_publisher *pub = ddn_publisher_new(ctx, endpoint, &options, &err);
    CHECK(pub != NULL);
    if (pub == NULL) return;
    CHECK(ddn_publisher_start(pub, "s", NULL, &err) == DDN_E_TIMEOUT);
    ddn_publisher_close(pub);
    void *pull = zmq_socket(ctx, ZMQ_PULL); /* the service comes */
    int wait_ms = 5000;
    zmq_setsockopt(pull, ZMQ_RCVTIMEO, &wait_ms, sizeof wait_ms);
    CHECK(zmq_bind(pull, endpoint) == 0);
    options.timeout_ms = wait_ms;
    pub = ddn_publisher_new(ctx, endpoint, &options, &err);
    CHECK(pub != NULL && ddn_publisher_start(pub, "s", NULL, &err) == DDN_OK);
    char topic[16];
    CHECK(zmq_recv(pull, topic, sizeof topic, 0) == 5); /* "start" mark's topic: frame */
    int zero = 0;
    zmq_setsockopt(pull, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(pull);
    ddn_publisher_close(pub);
}

static void test_endpoint_errors_name_the_endpoint(void *ctx) {
    ddn_error err;
    void *taken = zmq_socket(ctx, ZMQ_PULL);
    char endpoint[64];
    size_t len = sizeof endpoint;
    CHECK(zmq_bind(taken, "tcp://127.0.0.1:*") == 0);
    CHECK(zmq_getsockopt(taken, ZMQ_LAST_ENDPOINT, endpoint, &len) == 0);
    ddn_publisher_options options = ddn_publisher_default_options();
    options.linger_ms = 0;
    CHECK(ddn_publisher_new(ctx, endpoint, &options, &err) == NULL);
    CHECK(err.code == DDN_E_ZMQ && strstr(err.message, endpoint) != NULL);
    const char *topics[] = {"denoised"};
    CHECK(ddn_subscriber_new(ctx, "127.0.0.1:5556", topics, 1, &err) == NULL);
    CHECK(strstr(err.message, "cannot connect to 127.0.0.1:5556") != NULL);
    CHECK(strstr(err.message, "expected an endpoint like tcp://") != NULL);
    CHECK(err.code == DDN_E_ARGUMENT); /* a bad argument: a program's usage error */
    /* libzmq binds tcp://127.0.0.1:99999 on port 34463, or waits there for a connect */
    const char *remapped[] = {"tcp://127.0.0.1:99999", "tcp://127.0.0.1:65536", "tcp://127.0.0.1"};
    const char *port_rule = "expected a TCP endpoint tcp://host:port with a port of 0-65535";
    for (size_t i = 0; i < 3; i++) {
        CHECK(ddn_publisher_new(ctx, remapped[i], &options, &err) == NULL);
        CHECK(strstr(err.message, remapped[i]) != NULL && strstr(err.message, port_rule) != NULL);
        CHECK(err.code == DDN_E_ARGUMENT);
        CHECK(ddn_subscriber_new(ctx, remapped[i], topics, 1, &err) == NULL);
        CHECK(strstr(err.message, port_rule) != NULL);
        CHECK(ddn_control_new(ctx, remapped[i], 100, &err) == NULL);
        CHECK(strstr(err.message, port_rule) != NULL);
    }
    int zero = 0;
    zmq_setsockopt(taken, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(taken);
}

/* Output is decoded against the output bounds (PROTOCOL.md, section 7): a traces
 * message with 20,000 ROIs has a row per ROI and a 100 KB header of labels. */
static ddn_status decode_array(const char *dtype, uint32_t rows, uint32_t columns,
                               uint32_t labels, int strict, const ddn_limits *limits,
                               ddn_error *err) {
    msgpack_sbuffer header;
    msgpack_sbuffer_init(&header);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &header, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_str_with_body(&pk, "dtype", 5);
    msgpack_pack_str_with_body(&pk, dtype, 3);
    msgpack_pack_str_with_body(&pk, "shape", 5);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint32(&pk, rows);
    msgpack_pack_uint32(&pk, columns);
    msgpack_pack_str_with_body(&pk, "labels", 6);
    msgpack_pack_array(&pk, labels);
    for (uint32_t i = 0; i < labels; i++) msgpack_pack_uint32(&pk, 70000 + i);
    size_t payload_size = (size_t)rows * columns * 4;
    void *payload = calloc(payload_size, 1);
    ddn_part parts[3] = {{"traces", 6}, {header.data, header.size}, {payload, payload_size}};
    ddn_message *msg = ddn_message_new();
    ddn_status st = ddn_message_decode(msg, parts, 3, strict, limits, err);
    ddn_message_free(msg);
    free(payload);
    msgpack_sbuffer_destroy(&header);
    return st;
}

static void test_output_bounds(void) {
    ddn_error err;
    ddn_limits small = ddn_default_limits();
    small.max_header_bytes = 1024;
    small.max_side = 64;
    small.max_payload_bytes = 4096;
    CHECK(decode_array("<f4", 20000, 3, 20000, 0, NULL, &err) == DDN_OK);
    CHECK(decode_array("<f4", 20000, 3, 20000, 1, NULL, &err) == DDN_E_HEADER_SIZE);
    CHECK(decode_array("<f4", 64, 64, 0, 0, &small, &err) == DDN_OK); /* 4 x 4096 */
    CHECK(decode_array("<f4", 65, 64, 0, 0, &small, &err) == DDN_E_PAYLOAD_SIZE);
    CHECK(decode_array("<f4", 1, 3, 3300, 0, &small, &err) == DDN_E_HEADER_SIZE); /* 16 KiB */
    CHECK(decode_array("<f4", 1, 3, 1600, 0, &small, &err) == DDN_OK);
}

/* A set_rois request with `source` (and fit): its status, and the bytes it wrote. */
static ddn_status encode_source(const char *source, ddn_error *err, size_t *written) {
    const uint16_t labels[2] = {0, 1};
    ddn_set_rois_options options = {.fit = 1, .source = source};
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    ddn_status st = ddn_encode_set_rois_with(&out, NULL, "<u2", 1, 2, labels, &options, err);
    *written = out.size;
    msgpack_sbuffer_destroy(&out);
    return st;
}

static void test_set_rois_source(void) {
    ddn_error err;
    size_t written;
    char text[2 * DDN_MAX_SOURCE + 2];
    memset(text, 'a', DDN_MAX_SOURCE + 1);
    text[DDN_MAX_SOURCE] = '\0';
    CHECK(encode_source(text, &err, &written) == DDN_OK && written > DDN_MAX_SOURCE);
    text[DDN_MAX_SOURCE] = 'a', text[DDN_MAX_SOURCE + 1] = '\0';
    CHECK(encode_source(text, &err, &written) == DDN_E_ARGUMENT && written == 0);
    CHECK(strstr(err.message, "1 to 1024") != NULL);
    CHECK(strstr(err.message, "got 1025 characters") != NULL);
    CHECK(encode_source("", &err, &written) == DDN_E_ARGUMENT && written == 0);
    CHECK(strstr(err.message, "got 0 characters") != NULL);
    /* characters, not bytes: 1024 e-acute are 2048 bytes */
    for (int i = 0; i < DDN_MAX_SOURCE; i++) memcpy(text + 2 * i, "\xc3\xa9", 2);
    text[2 * DDN_MAX_SOURCE] = '\0';
    CHECK(encode_source(text, &err, &written) == DDN_OK);
    CHECK(encode_source("rois\tcells", &err, &written) == DDN_E_ARGUMENT);
    CHECK(strstr(err.message, "a control character") != NULL);
    CHECK(encode_source("rois\xc2\x85", &err, &written) == DDN_E_ARGUMENT); /* U+0085 */
    CHECK(encode_source("rois\xc3", &err, &written) == DDN_E_ARGUMENT);
    CHECK(strstr(err.message, "invalid UTF-8") != NULL);

    /* without options, the same bytes as the function without them */
    const uint16_t labels[2] = {0, 1};
    msgpack_sbuffer plain, with;
    msgpack_sbuffer_init(&plain);
    msgpack_sbuffer_init(&with);
    CHECK(ddn_encode_set_rois(&plain, "s1", "<u2", 1, 2, labels, &err) == DDN_OK);
    CHECK(ddn_encode_set_rois_with(&with, "s1", "<u2", 1, 2, labels, NULL, &err) == DDN_OK);
    CHECK(plain.size == with.size && memcmp(plain.data, with.data, plain.size) == 0);
    msgpack_sbuffer_destroy(&plain);
    msgpack_sbuffer_destroy(&with);
}

int main(void) {
    void *ctx = zmq_ctx_new();
    test_publish_subscribe(ctx);
    test_validation(ctx);
    test_control(ctx);
    test_push_connect_waits_for_the_service(ctx);
    test_endpoint_errors_name_the_endpoint(ctx);
    test_output_bounds();
    test_set_rois_source();
    zmq_ctx_term(ctx);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
