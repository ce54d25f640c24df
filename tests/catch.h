// SPDX-License-Identifier: LGPL-2.1-or-later
// Include this instead of catch.hpp. Debian's libtorch pulls in glog, whose
// CHECK macro would silently replace Catch's (assertions neither counted nor
// reported), so torch comes first and glog's CHECK is dropped. Tests that
// never touch torch define TALKER_TEST_WITHOUT_TORCH and compile faster.
#pragma once

#ifndef TALKER_TEST_WITHOUT_TORCH
#include <torch/torch.h>
#endif

#undef CHECK
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
