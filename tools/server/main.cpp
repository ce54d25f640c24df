// SPDX-License-Identifier: LGPL-2.1-or-later
// talker-server: the interactive talking head. A browser opens the page (or a
// LiveTalking front end calls the API), sends a WebRTC offer, and gets its own
// live pipeline; text sent to /human is spoken with lip-sync.
#include <glib-unix.h>
#include <malloc.h>
#include <gst/gst.h>

#include <cstdio>
#include <iostream>
#include <vector>

#include "tools/server/api.h"
#include "tools/server/options.h"

namespace {

// What a session pipeline is made of, by plugin package.
bool check_elements(const talker::server::Options &options) {
  struct Need {
    const char *element, *package;
  };
  const Need needs[] = {
      {"talkertts", "gst-talker (GST_PLUGIN_PATH=build/gst)"},
      {"talkinghead", "gst-talker (GST_PLUGIN_PATH=build/gst)"},
      {"webrtcbin", "gstreamer1.0-plugins-bad"},
      {"nicesrc", "gstreamer1.0-nice"},
      {"x264enc", "gstreamer1.0-plugins-ugly"},
      {"vp8enc", "gstreamer1.0-plugins-good"},
      {"opusenc", "gstreamer1.0-plugins-base"},
      {"rtph264pay", "gstreamer1.0-plugins-good"},
      {"clocksync", "gstreamer1.0 (core)"},
      {"capssetter", "gstreamer1.0-plugins-good"},
      {"mp4mux", "gstreamer1.0-plugins-good"},
      {"webmmux", "gstreamer1.0-plugins-good"},
      {"decodebin", "gstreamer1.0-plugins-base"},
  };
  std::vector<Need> all(std::begin(needs), std::end(needs));
  if (options.transport == "whip") all.push_back({"talkerwhipsink", "gst-talker (build/gst)"});
  if (options.transport == "rtmp") {
    all.push_back({"talkerrtmpsink", "gst-talker (build/gst)"});
    all.push_back({"rtmp2sink", "gstreamer1.0-plugins-bad"});
  }
  bool ok = true;
  for (const auto &n : all)
    if (GstElementFactory *f = gst_element_factory_find(n.element)) {
      gst_object_unref(f);
    } else {
      std::cerr << "talker-server: element '" << n.element << "' is missing: install " << n.package
                << "\n";
      ok = false;
    }
  return ok;
}

}  // namespace

int main(int argc, char **argv) {
  talker::server::Options options;
  try {
    options = talker::server::parse_options(argc, argv);
  } catch (const talker::server::UsageError &e) {
    if (*e.what()) std::cerr << "talker-server: " << e.what() << "\n\n";
    std::cerr << talker::server::usage();
    return *e.what() ? 2 : 0;
  }
  // Every session brings streaming threads, and glibc gives threads arenas of
  // their own whose heaps only shrink from the top: after a session ended,
  // RSS stayed 8-17 % above its level after the first, by whichever arena
  // kept a live block last. One arena (threads keep their tcache) is flat
  // over 20 sessions. MALLOC_ARENA_MAX in the environment still wins.
  if (!g_getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 1);
  gst_init(nullptr, nullptr);
  if (!check_elements(options)) return 1;
  if (!g_file_test(options.avatars.c_str(), G_FILE_TEST_IS_DIR)) {
    std::cerr << "talker-server: --avatars " << options.avatars << " is not a folder\n";
    return 1;
  }
  GMainLoop *loop = g_main_loop_new(nullptr, FALSE);
  talker::server::Api api(options);
  unsigned port = 0;
  try {
    port = api.listen();
  } catch (const std::exception &e) {
    std::cerr << "talker-server: " << e.what() << "\n";
    return 1;
  }
  const std::string scheme = options.tls_cert.empty() ? "http" : "https";
  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  std::printf("talker-server listening on %s://%s:%u/ (max %u sessions%s)\n", scheme.c_str(),
              host.c_str(), port, options.max_sessions,
              options.token.empty() ? "" : ", token required");
  std::fflush(stdout);
  auto quit = +[](gpointer data) -> gboolean {
    g_main_loop_quit(static_cast<GMainLoop *>(data));
    return G_SOURCE_REMOVE;
  };
  g_unix_signal_add(SIGINT, quit, loop);
  g_unix_signal_add(SIGTERM, quit, loop);
  g_main_loop_run(loop);
  std::printf("talker-server: shutting down\n");
  api.shutdown();
  g_main_loop_unref(loop);
  return 0;
}
