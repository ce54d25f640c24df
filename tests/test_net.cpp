// SPDX-License-Identifier: LGPL-2.1-or-later
// lib/net without a network: redaction, back-off, and the WHIP client's
// reading of Link, Location and Retry-After (RFC 9725, RFC 8288, RFC 9110).
#include "tests/catch.h"

#include <libsoup/soup.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "tests/loopback_http.h"

#include "lib/net/backoff.h"
#include "lib/net/chat_client.h"
#include "lib/net/redact.h"
#include "lib/net/whip_client.h"

using namespace talker::net;

TEST_CASE("redact_url hides keys, tokens and passwords, keeps where a stream goes") {
  CHECK(redact_url("rtmp://live-push.bilivideo.com/live-bvc/?streamname=live_1_2&key=abc123") ==
        "rtmp://live-push.bilivideo.com/live-bvc/?streamname=***&key=***");
  CHECK(redact_url("rtmp://push.douyin.com/third/stream-123?expire=1&sign=deadbeef") ==
        "rtmp://push.douyin.com/third/***?expire=***&sign=***");
  CHECK(redact_url("rtmp://127.0.0.1:1935/live/secretkey") == "rtmp://127.0.0.1:1935/live/***");
  CHECK(redact_url("http://127.0.0.1:1985/rtc/v1/whip/?app=live&stream=livestream") ==
        "http://127.0.0.1:1985/rtc/v1/whip/?app=live&stream=livestream");
  CHECK(redact_url("http://h:1985/rtc/v1/whip/?action=delete&token=t0k&app=live&session=s1") ==
        "http://h:1985/rtc/v1/whip/?action=delete&token=***&app=live&session=***");
  CHECK(redact_url("turn://user:pass@turn.example.com:3478") ==
        "turn://user:***@turn.example.com:3478");
  CHECK(redact_url("not a url") == "not a url");
}

TEST_CASE("Backoff doubles up to its ceiling with equal jitter, and obeys Retry-After") {
  Backoff b(1000, 8000, 42);
  for (int round = 0; round < 50; ++round) {
    const uint32_t d1 = b.delay_ms(1), d2 = b.delay_ms(2), d4 = b.delay_ms(4), d9 = b.delay_ms(9);
    CHECK((d1 >= 500 && d1 <= 1000));
    CHECK((d2 >= 1000 && d2 <= 2000));
    CHECK((d4 >= 4000 && d4 <= 8000));
    CHECK((d9 >= 4000 && d9 <= 8000));
  }
  std::set<uint32_t> seen;
  for (int i = 0; i < 20; ++i) seen.insert(b.delay_ms(3));
  CHECK(seen.size() > 5);  // jittered, not in step
  CHECK(b.delay_ms(1, 5000) == 5000);
}

TEST_CASE("Link ice-server headers (RFC 9725 section 4.6)") {
  const auto servers = parse_ice_server_links(
      {"<stun:stun.example.net>; rel=\"ice-server\", <https://example.org/>; rel=\"help\"",
       "<turn:turn.example.net?transport=udp>; rel=\"ice-server\"; username=\"user\"; "
       "credential=\"my:pass,word\"; credential-type=\"password\"",
       "<turns:turn.example.net:5349?transport=tcp>; rel=ice-server"});
  REQUIRE(servers.size() == 3);
  CHECK(servers[0].url == "stun:stun.example.net");
  CHECK(servers[0].webrtcbin_uri() == "stun://stun.example.net");
  CHECK(servers[1].username == "user");
  CHECK(servers[1].credential == "my:pass,word");
  CHECK(servers[1].webrtcbin_uri() ==
        "turn://user:my%3Apass%2Cword@turn.example.net?transport=udp");
  CHECK(servers[2].webrtcbin_uri() == "turns://turn.example.net:5349?transport=tcp");
  CHECK(parse_ice_server_links({"<http://x/>; rel=\"ice-server\""}).empty());
}

TEST_CASE("Location resolves against the URL that answered") {
  CHECK(resolve_url("http://h:1985/rtc/v1/whip/?app=live&stream=s", "resource/7") ==
        "http://h:1985/rtc/v1/whip/resource/7");
  CHECK(resolve_url("http://h:8080/whip/endpoint", "/resource/7?t=1") ==
        "http://h:8080/resource/7?t=1");
  CHECK(resolve_url("http://h:8080/whip/endpoint", "https://other/r/1") == "https://other/r/1");
}

TEST_CASE("Retry-After as seconds or HTTP-date; which statuses are retried") {
  CHECK(parse_retry_after_ms("3") == 3000);
  CHECK(parse_retry_after_ms(" 0 ") == 0);
  CHECK(parse_retry_after_ms("") == 0);
  CHECK(parse_retry_after_ms("soon") == 0);
  GDateTime *later = g_date_time_add_seconds(g_date_time_new_now_utc(), 10);
  gchar *date = soup_date_time_to_string(later, SOUP_DATE_HTTP);
  const unsigned ms = parse_retry_after_ms(date);
  CHECK((ms >= 8000 && ms <= 10000));
  g_free(date);
  g_date_time_unref(later);
  for (unsigned s : {500u, 502u, 503u, 504u, 408u, 429u}) CHECK(is_retryable_status(s));
  for (unsigned s : {400u, 401u, 403u, 404u, 405u, 415u, 422u}) CHECK_FALSE(is_retryable_status(s));
}

TEST_CASE("SSE parser: events whole, however the bytes are split") {
  const std::string stream =
      ": keep-alive\r\n\r\ndata: {\"a\":1}\r\n\r\nevent: end\ndata: line one\ndata: line two\n\n"
      "data:no space\n\nretry: 10\nid: 7\n\n";
  std::vector<std::pair<std::string, std::string>> whole;
  SseParser p;
  p.feed(stream.data(), stream.size(),
         [&](const std::string &e, const std::string &d) { whole.emplace_back(e, d); });
  REQUIRE(whole.size() == 3);
  CHECK(whole[0] == std::make_pair(std::string("message"), std::string("{\"a\":1}")));
  CHECK(whole[1] == std::make_pair(std::string("end"), std::string("line one\nline two")));
  CHECK(whole[2].second == "no space");
  for (std::size_t step : {1, 2, 3, 7}) {
    std::vector<std::pair<std::string, std::string>> pieces;
    SseParser q;
    for (std::size_t i = 0; i < stream.size(); i += step)
      q.feed(stream.data() + i, std::min(step, stream.size() - i),
             [&](const std::string &e, const std::string &d) { pieces.emplace_back(e, d); });
    CHECK(pieces == whole);
  }
}

namespace {
// An OpenAI-compatible chat server on loopback (no LLM exists offline: this
// one streams a fixed reply, token by token).
void stream_reply(talker::test::ResponseWriter &w, const std::vector<std::string> &tokens,
                  int delay_ms, std::atomic<bool> *client_gone = nullptr) {
  w.start(200, "text/event-stream");
  for (const auto &t : tokens) {
    const nlohmann::json j{{"choices", {{{"index", 0}, {"delta", {{"content", t}}}}}}};
    const std::string event = "data: " + j.dump() + "\n\n";
    if (!w.chunk(event.data(), event.size())) {
      if (client_gone) *client_gone = true;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  }
  const std::string done = "data: [DONE]\n\n";
  w.chunk(done.data(), done.size());
  w.end_chunks();
}
}  // namespace

TEST_CASE("chat client: streams the reply, sends the conversation") {
  talker::test::LoopbackHttpServer server(
      [](const talker::test::SeenRequest &, talker::test::ResponseWriter &w) {
        stream_reply(w, {"Hello", ", ", "**world**", "!"}, 5);
      });
  ChatClient chat({server.url() + "/v1", "test-model", "sk-secret", 10});
  CHECK(chat.url() == server.url() + "/v1/chat/completions");
  std::vector<std::string> pieces;
  const std::string reply = chat.stream(
      {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "Again"}},
      [&](const std::string &p) {
        pieces.push_back(p);
        return true;
      });
  CHECK(reply == "Hello, **world**!");
  CHECK(pieces == std::vector<std::string>{"Hello", ", ", "**world**", "!"});
  const auto seen = server.requests().at(0);
  CHECK(seen.path == "/v1/chat/completions");
  CHECK(seen.headers.at("authorization") == "Bearer sk-secret");
  const auto body = nlohmann::json::parse(seen.body);
  CHECK(body["model"] == "test-model");
  CHECK(body["stream"] == true);
  REQUIRE(body["messages"].size() == 4);
  CHECK(body["messages"][2]["role"] == "assistant");
  CHECK(body["messages"][3]["content"] == "Again");
}

TEST_CASE("chat client: errors name the cause") {
  talker::test::LoopbackHttpServer server(
      [](const talker::test::SeenRequest &r, talker::test::ResponseWriter &w) {
        if (r.path.find("/bad") == 0) {
          const std::string body = R"({"error":{"message":"model not found"}})";
          w.start(404, "application/json", long(body.size()));
          w.write(body);
        } else {
          w.start(200, "text/event-stream");
          const std::string e = "data: {\"error\":{\"message\":\"rate limited\"}}\n\n";
          w.chunk(e.data(), e.size());
          w.end_chunks();
        }
      });
  ChatClient bad({server.url() + "/bad", "m", "", 10});
  CHECK_THROWS_WITH(
      bad.stream({{"user", "x"}}, [](const std::string &) { return true; }),
      Catch::Matchers::Contains("HTTP 404") && Catch::Matchers::Contains("model not found"));
  ChatClient limited({server.url(), "m", "", 10});
  CHECK_THROWS_WITH(limited.stream({{"user", "x"}}, [](const std::string &) { return true; }),
                    Catch::Matchers::Contains("rate limited"));
  CHECK(server.requests().at(1).headers.count("authorization") == 0);
  CHECK_THROWS(ChatClient({"ftp://example.com", "m", "", 10}));
}

TEST_CASE("chat client: cancel closes the connection mid-reply") {
  std::atomic<bool> gone{false};
  talker::test::LoopbackHttpServer server(
      [&](const talker::test::SeenRequest &, talker::test::ResponseWriter &w) {
        std::vector<std::string> many(200, "word ");
        stream_reply(w, many, 20, &gone);
      });
  ChatClient chat({server.url(), "m", "", 10});
  std::atomic<int> got{0};
  std::thread canceller([&] {
    while (got.load() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    chat.cancel();
  });
  const auto t0 = std::chrono::steady_clock::now();
  const std::string reply = chat.stream({{"user", "talk"}}, [&](const std::string &) {
    ++got;
    return true;
  });
  canceller.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(s < 2.0);  // 200 tokens at 20 ms would take 4 s
  CHECK(reply.rfind("word word word ", 0) == 0);
  // The server finds out at its next write.
  for (int i = 0; i < 100 && !gone; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(gone);
}

int main(int argc, char *argv[]) {
  return Catch::Session().run(argc, argv);
}
