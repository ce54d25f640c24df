// SPDX-License-Identifier: LGPL-2.1-or-later
// A small HTTP/1.1 server on 127.0.0.1 for tests: one connection at a time,
// each answered by a handler that writes the response bytes itself, so a
// test can stream chunks, fail mid-body or never answer.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace talker::test {

struct SeenRequest {
  std::string method, path, body;
  std::map<std::string, std::string> headers;  // names in lower case
};

class ResponseWriter {
 public:
  explicit ResponseWriter(int fd) : fd_(fd) {}
  bool write(const std::string &bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += size_t(n);
    }
    return true;
  }
  bool write(const void *data, size_t n) {
    return write(std::string(static_cast<const char *>(data), n));
  }
  // Status line and headers; chunked when no length is given.
  void start(int status, const std::string &content_type, long content_length = -1) {
    std::string h = "HTTP/1.1 " + std::to_string(status) + (status < 400 ? " OK" : " Error") +
                    "\r\nContent-Type: " + content_type + "\r\nConnection: close\r\n";
    h += content_length >= 0 ? "Content-Length: " + std::to_string(content_length) + "\r\n"
                             : "Transfer-Encoding: chunked\r\n";
    write(h + "\r\n");
  }
  bool chunk(const void *data, size_t n) {
    char size[32];
    snprintf(size, sizeof size, "%zx\r\n", n);
    return write(size) && write(data, n) && write("\r\n");
  }
  void end_chunks() { write("0\r\n\r\n"); }

 private:
  int fd_;
};

class LoopbackHttpServer {
 public:
  using Handler = std::function<void(const SeenRequest &, ResponseWriter &)>;

  explicit LoopbackHttpServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 8) != 0)
      throw std::runtime_error("loopback server: cannot listen");
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr *>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~LoopbackHttpServer() {
    stopping = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<SeenRequest> requests() {
    std::lock_guard<std::mutex> l(lock_);
    return requests_;
  }
  std::atomic<bool> stopping{false};

 private:
  void serve() {
    for (;;) {
      const int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      SeenRequest request;
      if (read_request(fd, request)) {
        {
          std::lock_guard<std::mutex> l(lock_);
          requests_.push_back(request);
        }
        ResponseWriter writer(fd);
        handler_(request, writer);
      }
      ::close(fd);
    }
  }

  static bool read_request(int fd, SeenRequest &r) {
    std::string data;
    char buf[4096];
    size_t header_end;
    while ((header_end = data.find("\r\n\r\n")) == std::string::npos) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return false;
      data.append(buf, size_t(n));
    }
    const std::string head = data.substr(0, header_end);
    size_t line_end = head.find("\r\n");
    const std::string first = head.substr(0, line_end);
    const size_t sp1 = first.find(' '), sp2 = first.find(' ', sp1 + 1);
    r.method = first.substr(0, sp1);
    r.path = first.substr(sp1 + 1, sp2 - sp1 - 1);
    while (line_end != std::string::npos && line_end < head.size()) {
      const size_t next = head.find("\r\n", line_end + 2);
      const std::string line = head.substr(
          line_end + 2, next == std::string::npos ? std::string::npos : next - line_end - 2);
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (auto &c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
        size_t v = colon + 1;
        while (v < line.size() && line[v] == ' ') ++v;
        r.headers[name] = line.substr(v);
      }
      line_end = next;
    }
    const size_t length =
        r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    r.body = data.substr(header_end + 4);
    while (r.body.size() < length) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return false;
      r.body.append(buf, size_t(n));
    }
    return true;
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::mutex lock_;
  std::vector<SeenRequest> requests_;
};

}  // namespace talker::test
