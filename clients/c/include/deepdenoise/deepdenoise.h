/* deepdenoise C client: include this one header. Protocol v1 (clients/PROTOCOL.md). */
#ifndef DEEPDENOISE_H
#define DEEPDENOISE_H

#include "client.h"
#include "protocol.h"

#define DDN_CLIENT_VERSION "0.1.0"

#endif
