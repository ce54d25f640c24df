// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <string>

namespace talker::net {

// A URL as it may appear in logs and bus messages: the password in the user
// part, every query value except app/stream/vhost/action, and for rtmp(s)://
// the stream name after the application (the stream key on live platforms)
// become "***". Text that is not a URL comes back unchanged.
std::string redact_url(const std::string &url);

}  // namespace talker::net
