// SPDX-License-Identifier: LGPL-2.1-or-later
// Bounds on how a client sends a request: its headers must arrive within a
// time, its body must keep moving, and a body without Content-Length
// (chunked) is refused once it passes the route's limit. libsoup has none of
// these: a client sending a byte a second, or a chunked body that never ends,
// would hold a connection (and, chunked, memory) for as long as it likes.
#pragma once

#include <libsoup/soup.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace talker::server {

class RequestWatch {
 public:
  struct Limits {
    double header_timeout_s = 10;  // from the connection's request start to its last header
    double body_timeout_s = 30;    // longest pause between two pieces of a body
    double refused_drain_s = 5;    // a refused body still arriving after this: connection closed
  };
  // `body_limit(path)`: the largest body that path takes.
  RequestWatch(SoupServer *server, Limits limits,
               std::function<std::size_t(const std::string &)> body_limit);
  ~RequestWatch();
  RequestWatch(const RequestWatch &) = delete;
  RequestWatch &operator=(const RequestWatch &) = delete;

  // Closes the connections of requests past their time (call it periodically).
  void check();
  std::size_t reading() const { return reading_.size(); }

 private:
  struct Reading {
    gint64 started_us = 0;
    gint64 last_progress_us = 0;
    gint64 refused_us = 0;  // the body passed its limit: answered 413, read without keeping
    bool headers_done = false;
    bool chunked = false;
    std::size_t limit = 0;
    std::size_t bytes = 0;
  };
  static void on_started(SoupServer *, SoupServerMessage *msg, gpointer self);
  static void on_headers(SoupServerMessage *msg, gpointer self);
  static void on_chunk(SoupServerMessage *msg, GBytes *chunk, gpointer self);
  static void on_body(SoupServerMessage *msg, gpointer self);
  static void on_gone(gpointer self, GObject *msg);
  void forget(SoupServerMessage *msg);

  SoupServer *server_;
  Limits limits_;
  std::function<std::size_t(const std::string &)> body_limit_;
  std::map<SoupServerMessage *, Reading> reading_;
  gulong started_handler_ = 0;
};

}  // namespace talker::server
