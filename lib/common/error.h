// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <stdexcept>
#include <string>

namespace talker {

// The one exception type libtalker throws for bad input (files, configs, shapes).
// Its message is meant for a user: it names the file or key and the problem.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string &what) : std::runtime_error(what) {}
};

}  // namespace talker
