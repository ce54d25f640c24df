// SPDX-License-Identifier: LGPL-2.1-or-later
// A real, independent WebRTC peer for tests: tests/whip/whip-endpoint.js
// (node + headless chromium). It answers WHIP pushes and plays WHEP streams,
// decodes what arrives and times white flashes and audio beeps as they come
// out of chromium's jitter buffers.
#pragma once

#include <glib.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "lib/net/http_client.h"
#include "tests/output_harness.h"

namespace talker::test {

class WhipEndpoint {
 public:
  explicit WhipEndpoint(int port = 0) : http_(10) {
    int fd = -1;
    child_ = Child({"node", std::string(TALKER_SOURCE_ROOT) + "/tests/whip/whip-endpoint.js",
                    "--port", std::to_string(port)},
                   &fd, g_get_tmp_dir() + std::string("/talker-whip-endpoint.log"));
    // The endpoint prints one line; nothing is read after it, so nothing
    // here can wait on the pipe once the endpoint is gone.
    FILE *out = fdopen(fd, "r");
    char line[256] = {0};
    while (fgets(line, sizeof line, out))
      if (sscanf(line, "READY %d", &port_) == 1) break;
    fclose(out);
    if (port_ == 0) throw std::runtime_error("the WHIP endpoint did not start (node, chromium?)");
  }
  ~WhipEndpoint() { child_.stop(); }
  int port() const { return port_; }
  std::string url(const std::string &path = "/whip/live") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  nlohmann::json get(const std::string &what) {
    net::HttpRequest r;
    r.method = "GET";
    r.url = url("/control/" + what);
    return nlohmann::json::parse(http_.exchange(r, 1 << 20).body);
  }
  void post(const std::string &what, const nlohmann::json &body = nullptr) {
    net::HttpRequest r;
    r.url = url(what);
    r.content_type = "application/json";
    r.body = body.is_null() ? "{}" : body.dump();
    http_.exchange(r, 4096);
  }
  void mode(const nlohmann::json &m) { post("/control", m); }
  // Plays `whep_url` as a WHEP viewer in the endpoint's chromium; the viewer's
  // id names its entry in get("sessions"). Empty when the server refused.
  std::string play_whep(const std::string &whep_url) {
    net::HttpRequest r;
    r.url = url("/control/whep");
    r.content_type = "application/json";
    r.body = nlohmann::json{{"url", whep_url}}.dump();
    const auto answer = http_.exchange(r, 1 << 16);
    if (answer.status != 200) return "";
    return nlohmann::json::parse(answer.body)["id"].get<std::string>();
  }
  nlohmann::json session(const std::string &id) {
    for (auto &s : get("sessions"))
      if (s["id"] == id) return s;
    return nullptr;
  }
  std::vector<nlohmann::json> requests(const std::string &method) {
    std::vector<nlohmann::json> out;
    for (auto &r : get("requests"))
      if (r["method"] == method) out.push_back(r);
    return out;
  }

 private:
  Child child_;
  int port_ = 0;
  net::HttpClient http_;
};

}  // namespace talker::test
