// SPDX-License-Identifier: LGPL-2.1-or-later
// The HTTP side of WHIP (RFC 9725), without any media: POST an offer, follow
// 307/308, resolve the resource URL, read Link ice-servers, classify errors,
// DELETE the resource. talkerwhipsink drives it from its session thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lib/common/error.h"
#include "lib/net/http_client.h"

namespace talker::net {

struct IceServer {
  std::string url;  // stun:host[:port] or turn(s):host[:port][?transport=…]
  std::string username, credential;
  // The form webrtcbin takes: stun://host:port, turn://user:pass@host:port.
  std::string webrtcbin_uri() const;
};

// An answer that is not a session. `retryable`: 5xx, 408, 429 and failures to
// reach the endpoint; any other 4xx (and a 201 without Location) is fatal.
class WhipError : public Error {
 public:
  WhipError(const std::string &what, unsigned status, bool retryable, unsigned retry_after_ms,
            std::string body_start)
      : Error(what),
        status(status),
        retryable(retryable),
        retry_after_ms(retry_after_ms),
        body_start(std::move(body_start)) {}
  unsigned status;  // 0: no HTTP answer
  bool retryable;
  unsigned retry_after_ms;  // from Retry-After, 0 if none
  std::string body_start;   // the first 200 bytes of the answer
};

struct WhipSession {
  std::string answer_sdp;
  std::string resource_url;  // absolute
  std::vector<IceServer> ice_servers;
  unsigned redirects = 0;
};

class WhipClient {
 public:
  WhipClient(std::string endpoint, std::string token, unsigned timeout_s);

  // POSTs the offer; follows up to 5 307/308 redirects with method and body.
  // Throws WhipError.
  WhipSession publish(const std::string &offer_sdp);
  // OPTIONS on the endpoint, for the Link ice-servers before gathering.
  // Empty when the server does not answer it with any.
  std::vector<IceServer> preflight();
  // DELETE of the resource; the status (0 when unreachable). Never throws.
  unsigned terminate(const std::string &resource_url, unsigned timeout_s);
  // Aborts a POST or OPTIONS in flight (any thread). Not a DELETE: stopping
  // is when the resource must still be deleted.
  void cancel();

 private:
  HttpRequest request(const std::string &method, const std::string &url) const;
  std::string endpoint_, token_;
  unsigned timeout_s_;
  HttpClient http_;
  std::unique_ptr<HttpClient> delete_http_;
};

// Link: <stun:…>; rel="ice-server"; username="…"; credential="…" (any number
// of values, comma-separated or repeated). Other rels are ignored.
std::vector<IceServer> parse_ice_server_links(const std::vector<std::string> &link_values);
// RFC 3986 reference resolution: an absolute Location as is, a relative one
// against the URL that answered.
std::string resolve_url(const std::string &base, const std::string &reference);
// Retry-After: delta-seconds or an HTTP-date; 0 if absent or unreadable.
unsigned parse_retry_after_ms(const std::string &value);
bool is_retryable_status(unsigned status);

}  // namespace talker::net
