// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/net/whip_client.h"

#include <glib.h>
#include <libsoup/soup.h>

#include <cctype>
#include <cstdlib>
#include <utility>

#include "lib/net/redact.h"

namespace talker::net {
namespace {

constexpr size_t kMaxAnswerBytes = 256 * 1024;
constexpr unsigned kMaxRedirects = 5;

std::string trim(const std::string &s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

std::string unquote(std::string s) {
  s = trim(s);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

// Splits on `sep` outside <…> and "…".
std::vector<std::string> split_outside(const std::string &s, char sep) {
  std::vector<std::string> parts;
  std::string cur;
  bool in_angle = false, in_quote = false;
  for (char c : s) {
    if (c == '"' && !in_angle) in_quote = !in_quote;
    if (c == '<' && !in_quote) in_angle = true;
    if (c == '>' && !in_quote) in_angle = false;
    if (c == sep && !in_angle && !in_quote) {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  return parts;
}

std::string body_start(const std::string &body) {
  std::string s = body.substr(0, 200);
  for (char &c : s)
    if (c == '\r' || c == '\n') c = ' ';
  return s;
}

std::string escape_userinfo(const std::string &s) {
  gchar *e = g_uri_escape_string(s.c_str(), nullptr, FALSE);
  std::string out = e;
  g_free(e);
  return out;
}

}  // namespace

std::string IceServer::webrtcbin_uri() const {
  const size_t colon = url.find(':');
  if (colon == std::string::npos) return url;
  const std::string scheme = url.substr(0, colon);
  std::string rest = url.substr(colon + 1);
  if (rest.rfind("//", 0) == 0) rest = rest.substr(2);
  std::string auth;
  if (!username.empty() || !credential.empty())
    auth = escape_userinfo(username) + ":" + escape_userinfo(credential) + "@";
  return scheme + "://" + auth + rest;
}

std::vector<IceServer> parse_ice_server_links(const std::vector<std::string> &link_values) {
  std::vector<IceServer> servers;
  for (const std::string &value : link_values)
    for (const std::string &link : split_outside(value, ',')) {
      const std::vector<std::string> params = split_outside(link, ';');
      const std::string target = trim(params[0]);
      if (target.size() < 2 || target.front() != '<' || target.back() != '>') continue;
      IceServer server;
      server.url = target.substr(1, target.size() - 2);
      bool ice = false;
      for (size_t i = 1; i < params.size(); ++i) {
        const size_t eq = params[i].find('=');
        if (eq == std::string::npos) continue;
        std::string key = trim(params[i].substr(0, eq));
        for (char &c : key) c = char(std::tolower(static_cast<unsigned char>(c)));
        const std::string val = unquote(params[i].substr(eq + 1));
        if (key == "rel") {
          for (const std::string &rel : split_outside(val, ' '))
            if (rel == "ice-server") ice = true;
        } else if (key == "username") {
          server.username = val;
        } else if (key == "credential") {
          server.credential = val;
        }
      }
      const bool known = server.url.rfind("stun:", 0) == 0 || server.url.rfind("turn:", 0) == 0 ||
                         server.url.rfind("turns:", 0) == 0;
      if (ice && known) servers.push_back(server);
    }
  return servers;
}

std::string resolve_url(const std::string &base, const std::string &reference) {
  gchar *resolved =
      g_uri_resolve_relative(base.c_str(), reference.c_str(), G_URI_FLAGS_NONE, nullptr);
  if (!resolved) return reference;
  std::string out = resolved;
  g_free(resolved);
  return out;
}

unsigned parse_retry_after_ms(const std::string &value) {
  const std::string v = trim(value);
  if (v.empty()) return 0;
  if (std::isdigit(static_cast<unsigned char>(v[0]))) {
    const unsigned long seconds = std::strtoul(v.c_str(), nullptr, 10);
    return seconds > 86400 ? 86400000u : unsigned(seconds * 1000);
  }
  GDateTime *when = soup_date_time_new_from_http_string(v.c_str());
  if (!when) return 0;
  GDateTime *now = g_date_time_new_now_utc();
  const GTimeSpan diff = g_date_time_difference(when, now);
  g_date_time_unref(when);
  g_date_time_unref(now);
  if (diff <= 0) return 0;
  return diff / 1000 > 86400000 ? 86400000u : unsigned(diff / 1000);
}

bool is_retryable_status(unsigned status) {
  return status >= 500 || status == 408 || status == 429;
}

WhipClient::WhipClient(std::string endpoint, std::string token, unsigned timeout_s)
    : endpoint_(std::move(endpoint)),
      token_(std::move(token)),
      timeout_s_(timeout_s),
      http_(timeout_s) {}

HttpRequest WhipClient::request(const std::string &method, const std::string &url) const {
  HttpRequest r;
  r.method = method;
  r.url = url;
  // Never an empty "Bearer ": a server may read that as a wrong token.
  if (!token_.empty()) r.headers.emplace_back("Authorization", "Bearer " + token_);
  return r;
}

WhipSession WhipClient::publish(const std::string &offer_sdp) {
  WhipSession session;
  std::string url = endpoint_;
  for (;;) {
    HttpRequest r = request("POST", url);
    r.content_type = "application/sdp";
    r.body = offer_sdp;
    HttpResponse answer;
    try {
      answer = http_.exchange(r, kMaxAnswerBytes);
    } catch (const Error &e) {
      throw WhipError(redact_url(url) + ": " + e.what(), 0, true, 0, "");
    }
    const unsigned status = answer.status;
    if (status == 307 || status == 308) {
      const std::string location = answer.header("location");
      if (location.empty() || ++session.redirects > kMaxRedirects)
        throw WhipError(redact_url(url) + ": HTTP " + std::to_string(status) +
                            (location.empty() ? " without Location" : ": too many redirects"),
                        status, false, 0, body_start(answer.body));
      url = resolve_url(url, location);
      continue;
    }
    if (status != 201) {
      const bool retryable = is_retryable_status(status);
      std::string what = redact_url(url) + ": HTTP " + std::to_string(status) + " " + answer.reason;
      if (status >= 300 && status < 400)
        what += " (WHIP follows only 307/308 redirects, which keep the POST)";
      else if (status == 200)
        what += " (WHIP answers a new session with 201 Created)";
      if (!answer.body.empty()) what += ": " + body_start(answer.body);
      throw WhipError(what, status, retryable,
                      retryable ? parse_retry_after_ms(answer.header("retry-after")) : 0,
                      body_start(answer.body));
    }
    const std::string location = answer.header("location");
    if (location.empty())
      throw WhipError(redact_url(url) +
                          ": 201 Created without a Location header: the session could "
                          "never be ended, refusing it",
                      status, false, 0, body_start(answer.body));
    if (answer.body.find("v=0") == std::string::npos)
      throw WhipError(redact_url(url) + ": 201 Created without an SDP answer", status, false, 0,
                      body_start(answer.body));
    session.answer_sdp = answer.body;
    session.resource_url = resolve_url(url, location);
    session.ice_servers = parse_ice_server_links(answer.header_values("link"));
    return session;
  }
}

std::vector<IceServer> WhipClient::preflight() {
  try {
    HttpResponse answer = http_.exchange(request("OPTIONS", endpoint_), 4096);
    if (answer.status >= 200 && answer.status < 300)
      return parse_ice_server_links(answer.header_values("link"));
  } catch (const Error &) {
    // The POST that follows reports an unreachable endpoint.
  }
  return {};
}

unsigned WhipClient::terminate(const std::string &resource_url, unsigned timeout_s) {
  if (!delete_http_) delete_http_ = std::make_unique<HttpClient>(timeout_s);
  try {
    return delete_http_->exchange(request("DELETE", resource_url), 4096).status;
  } catch (const Error &) {
    return 0;
  }
}

void WhipClient::cancel() {
  http_.cancel();
}

}  // namespace talker::net
