// The deepdenoise C++ client: include this one header.
#pragma once

#include "deepdenoise/curve.hpp"
#include "deepdenoise/protocol.hpp"
#include "deepdenoise/sockets.hpp"
#include "deepdenoise/value.hpp"
