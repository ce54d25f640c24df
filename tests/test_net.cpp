// SPDX-License-Identifier: LGPL-2.1-or-later
// lib/net without a network: redaction, back-off, and the WHIP client's
// reading of Link, Location and Retry-After (RFC 9725, RFC 8288, RFC 9110).
#include "tests/catch.h"

#include <libsoup/soup.h>

#include <set>

#include "lib/net/backoff.h"
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

int main(int argc, char *argv[]) {
  return Catch::Session().run(argc, argv);
}
