// The deepdenoise C++ client: include this one header.
#pragma once

#include "deepdenoise/protocol.hpp"
#include "deepdenoise/sockets.hpp"
#include "deepdenoise/value.hpp"
