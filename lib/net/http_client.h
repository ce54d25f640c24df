// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

typedef struct _SoupSession SoupSession;
typedef struct _GCancellable GCancellable;

namespace talker::net {

struct FormFile {
  std::string field, filename, content_type;
  std::vector<uint8_t> data;
};

struct HttpRequest {
  std::string method = "POST";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  // Either a body with its content type, or multipart/form-data fields.
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> form_fields;
  std::vector<FormFile> form_files;
  // The answer must not be text or JSON (an error page sent with status 200
  // where audio was asked for): such a body becomes the error's message.
  bool refuse_text = false;
};

// A whole exchange, as the server answered it: nothing followed, nothing
// thrown for a status.
struct HttpResponse {
  unsigned status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case, in order
  std::string body;                                          // at most the max_body given
  std::string header(const std::string &lower_name) const;   // first value or ""
  std::vector<std::string> header_values(const std::string &lower_name) const;
};

// Called with each piece of the response body as it arrives; false stops.
using BodySink = std::function<bool(const uint8_t *data, size_t size)>;

// A blocking HTTP client (libsoup 3) that streams response bodies. One
// request at a time, from one thread; cancel() from any thread. Throws
// talker::Error naming the URL and cause: connection refused, timeout,
// HTTP status >= 400 (with the start of the server's message), a body cut
// short.
class HttpClient {
 public:
  explicit HttpClient(unsigned timeout_s);
  ~HttpClient();
  HttpClient(const HttpClient &) = delete;
  HttpClient &operator=(const HttpClient &) = delete;

  void send(const HttpRequest &request, const BodySink &on_body);
  // One request, redirects not followed, any status returned. Throws
  // talker::Error for what is not an HTTP answer (refused, timeout, reset).
  HttpResponse exchange(const HttpRequest &request, size_t max_body);
  void cancel();

 private:
  struct Exchange;
  std::unique_ptr<Exchange> start(const HttpRequest &request, bool follow_redirects);
  unsigned timeout_s_;
  SoupSession *session_ = nullptr;  // made by the thread that sends
  std::mutex cancel_lock_;
  GCancellable *current_ = nullptr;  // the request in flight
};

// Checks that `url` is an absolute http(s) URL; throws talker::Error if not.
void check_http_url(const std::string &url, const std::string &what);

}  // namespace talker::net
