// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/net/redact.h"

#include <array>
#include <string_view>

namespace talker::net {
namespace {

// Query keys whose values say where a stream goes, not who may send it.
bool is_public_key(std::string_view key) {
  constexpr std::array<std::string_view, 4> kPublic = {"app", "stream", "vhost", "action"};
  for (auto k : kPublic)
    if (key == k) return true;
  return false;
}

std::string redact_query(const std::string &query) {
  std::string out;
  size_t start = 0;
  while (start <= query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    const std::string pair = query.substr(start, end - start);
    const size_t eq = pair.find('=');
    if (!out.empty()) out += '&';
    if (eq == std::string::npos || is_public_key(std::string_view(pair).substr(0, eq)))
      out += pair;
    else
      out += pair.substr(0, eq + 1) + "***";
    start = end + 1;
  }
  return out;
}

}  // namespace

std::string redact_url(const std::string &url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return url;
  const std::string scheme = url.substr(0, scheme_end);
  const size_t authority_start = scheme_end + 3;
  size_t path_start = url.find_first_of("/?#", authority_start);
  if (path_start == std::string::npos) path_start = url.size();
  std::string authority = url.substr(authority_start, path_start - authority_start);
  const size_t at = authority.rfind('@');
  if (at != std::string::npos) {
    const size_t colon = authority.find(':');
    if (colon != std::string::npos && colon < at)
      authority = authority.substr(0, colon) + ":***" + authority.substr(at);
  }
  std::string rest = url.substr(path_start);
  const size_t fragment = rest.find('#');
  if (fragment != std::string::npos) rest.resize(fragment);
  std::string path = rest, query;
  const size_t q = rest.find('?');
  if (q != std::string::npos) {
    path = rest.substr(0, q);
    query = rest.substr(q + 1);
  }
  // rtmp://host/app/stream: the stream name is the key on every platform.
  if ((scheme == "rtmp" || scheme == "rtmps") && path.size() > 1) {
    const size_t app_end = path.find('/', 1);
    if (app_end != std::string::npos && app_end + 1 < path.size())
      path = path.substr(0, app_end + 1) + "***";
  }
  std::string out = scheme + "://" + authority + path;
  if (q != std::string::npos) out += "?" + redact_query(query);
  return out;
}

}  // namespace talker::net
