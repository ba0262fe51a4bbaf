/*
 * The test programs' CURVE keys, from the environment (as the Python CLI reads them):
 * DEEPDENOISE_CLIENT_KEY, this client's NAME.key_secret, and DEEPDENOISE_SERVER_KEY,
 * the service's service.key. Both set: CURVE; neither: plain; only one: bad usage.
 */
#ifndef DDN_EXAMPLES_CURVE_ENV_H
#define DDN_EXAMPLES_CURVE_ENV_H

#include <stdio.h>
#include <stdlib.h>

#include <deepdenoise/deepdenoise.h>

/* 1 with *curve set (NULL: plain), or 0 after a message on stderr (exit 2). */
static int curve_from_env(const char *program, ddn_curve_keys *keys,
                          const ddn_curve_keys **curve) {
    const char *client = getenv("DEEPDENOISE_CLIENT_KEY");
    const char *server = getenv("DEEPDENOISE_SERVER_KEY");
    int have_client = client != NULL && *client != '\0';
    int have_server = server != NULL && *server != '\0';
    *curve = NULL;
    if (!have_client && !have_server) return 1;
    if (!have_client || !have_server) {
        fprintf(stderr,
                "%s: %s is not set: expected both DEEPDENOISE_CLIENT_KEY (this client's "
                "NAME.key_secret) and DEEPDENOISE_SERVER_KEY (the service's service.key), "
                "or neither\n",
                program, have_client ? "DEEPDENOISE_SERVER_KEY" : "DEEPDENOISE_CLIENT_KEY");
        return 0;
    }
    ddn_error err;
    if (ddn_curve_keys_load(keys, client, server, &err) != DDN_OK) {
        fprintf(stderr, "%s: %s\n", program, err.message);
        return 0;
    }
    if (keys->secret_shared) /* the library says it; a program tells the user */
        fprintf(stderr, "%s: warning: the secret key file %s is readable by other users: "
                        "chmod 600 it\n", program, client);
    *curve = keys;
    return 1;
}

#endif
