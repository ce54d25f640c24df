// SPDX-License-Identifier: LGPL-2.1-or-later
// Many live talking heads in one process on one set of models: N pipelines
//   appsrc (live speech features at 25 fps, on the clock) ! musetalklipsync ! queue
//     ! fakesink sync=true
// run together for a while, with and without cross-session batching
// (shared-batch-size), and print the aggregate generated frames/s and each
// session's share of generated frames and lateness:
//   sessions_bench [--models micro|golden|DIR] [--decoder sd-vae|taesd] [--sessions 1,2,4,8]
//                  [--shared 0,16] [--seconds 20] [--batch 4] [--device cpu|cuda]
//                  [--dtype float32|float16|bfloat16] [--latency-ms N]
// micro: build/tools/micro; golden: ../shared/golden's small models (TAESD: its
// full-size decoder); DIR: a models/ folder as models/download.sh lays it out.
// Every frame carries speech, so every frame asks for the models: the figures
// are the most this device generates, and what a session loses when it cannot.
#include <gst/gst.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gst/common/gst_ptr.h"
#include "lib/nn/device.h"
#include "tests/golden.h"

using talker::gst::GstPtr;

namespace {

constexpr GstClockTime kFrame = 40 * GST_MSECOND;

std::vector<int> numbers(const std::string &list) {
  std::vector<int> out;
  std::stringstream ss(list);
  for (std::string n; std::getline(ss, n, ',');) out.push_back(std::stoi(n));
  return out;
}

struct Counters {
  guint64 generated = 0, skipped = 0, dropped = 0;
  double worst_lateness_ms = 0, latency_ms = 0;
  guint64 merged_runs = 0, shared_runs = 0, shared_frames = 0;
};

// One live session: its pipeline and the thread that feeds it features as a
// capture device would, each frame when the clock reaches it.
class Session {
 public:
  Session(const std::string &lipsync, int width) : width_(width) {
    const std::string caps =
        "application/x-talker-features,format=F32LE,layers=5,steps=10,layout=hf,width=" +
        std::to_string(width) + ",framerate=25/1";
    const std::string description =
        "appsrc name=src is-live=true format=time min-latency=0 caps=\"" + caps +
        "\" ! musetalklipsync name=m " + lipsync +
        " ! queue max-size-buffers=0 max-size-bytes=0 "
        "max-size-time=10000000000 ! fakesink name=sink sync=true";
    GError *err = nullptr;
    pipeline_.reset(gst_parse_launch(description.c_str(), &err));
    if (err) throw std::runtime_error(err->message);
    src_.reset(gst_bin_get_by_name(GST_BIN(pipeline_.get()), "src"));
    lipsync_.reset(gst_bin_get_by_name(GST_BIN(pipeline_.get()), "m"));
    sink_.reset(gst_bin_get_by_name(GST_BIN(pipeline_.get()), "sink"));
  }
  ~Session() {
    stop();
    gst_element_set_state(pipeline_.get(), GST_STATE_NULL);
  }

  bool start() {
    if (gst_element_set_state(pipeline_.get(), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
      return false;
    feeder_ = std::thread([this] { feed(); });
    return true;
  }
  void stop() {
    running_ = false;
    if (feeder_.joinable()) feeder_.join();
  }
  std::string error() {
    GstPtr<GstBus> bus(gst_element_get_bus(pipeline_.get()));
    GstPtr<GstMessage> msg(gst_bus_pop_filtered(bus.get(), GST_MESSAGE_ERROR));
    if (!msg) return "";
    GError *e = nullptr;
    gst_message_parse_error(msg.get(), &e, nullptr);
    std::string text = e->message;
    g_error_free(e);
    return text;
  }

  Counters counters() {
    Counters c;
    GstStructure *s = nullptr;
    g_object_get(lipsync_.get(), "stats", &s, nullptr);
    gst_structure_get_uint64(s, "frames-generated", &c.generated);
    gst_structure_get_uint64(s, "frames-skipped", &c.skipped);
    gst_structure_get_double(s, "worst-lateness-ms", &c.worst_lateness_ms);
    gst_structure_get_double(s, "inference-latency-ms", &c.latency_ms);
    gst_structure_get_uint64(s, "shared-merged-runs", &c.merged_runs);
    gst_structure_get_uint64(s, "shared-runs", &c.shared_runs);
    gst_structure_get_uint64(s, "shared-frames", &c.shared_frames);
    gst_structure_free(s);
    GstStructure *sink_stats = nullptr;
    g_object_get(sink_.get(), "stats", &sink_stats, nullptr);
    gst_structure_get_uint64(sink_stats, "dropped", &c.dropped);
    gst_structure_free(sink_stats);
    return c;
  }

 private:
  void feed() {
    GstPtr<GstClock> clock(gst_pipeline_get_clock(GST_PIPELINE(pipeline_.get())));
    const GstClockTime base = gst_element_get_base_time(pipeline_.get());
    auto features = torch::randn({50, width_});
    for (guint64 i = 0; running_; ++i) {
      const GstClockTime pts = i * kFrame;
      GstClockID id = gst_clock_new_single_shot_id(clock.get(), base + pts);
      gst_clock_id_wait(id, nullptr);
      gst_clock_id_unref(id);
      GstBuffer *b = gst_buffer_new_memdup(features.data_ptr<float>(), 50 * width_ * sizeof(float));
      GST_BUFFER_PTS(b) = pts;
      GST_BUFFER_DURATION(b) = kFrame;
      GstFlowReturn ret;
      g_signal_emit_by_name(src_.get(), "push-buffer", b, &ret);
      gst_buffer_unref(b);
      if (ret != GST_FLOW_OK) break;
    }
  }

  int width_;
  GstPtr<GstElement> pipeline_, src_, lipsync_, sink_;
  std::atomic<bool> running_{true};
  std::thread feeder_;
};

}  // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  std::string models = "micro", decoder = "sd-vae", device = "cpu", dtype = "float32";
  std::string sessions_arg = "1,2,4,8", shared_arg = "0,16";
  double seconds = 20;
  int batch = 4, latency_ms = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--models") models = v;
    if (k == "--decoder") decoder = v;
    if (k == "--sessions") sessions_arg = v;
    if (k == "--shared") shared_arg = v;
    if (k == "--seconds") seconds = std::stod(v);
    if (k == "--batch") batch = std::stoi(v);
    if (k == "--device") device = v;
    if (k == "--dtype") dtype = v;
    if (k == "--latency-ms") latency_ms = std::stoi(v);
  }
  const std::string micro = std::string(TALKER_BUILD_ROOT) + "/tools/micro/";
  std::string props, avatar = micro + "avatar";
  int width = 384;
  if (models == "micro") {
    props = "unet=" + micro + "unet.safetensors unet-config=" + micro + "musetalk.json vae=" +
            (decoder == "taesd" ? talker::test::golden("taesd") : micro + "vae");
    width = 64;
  } else if (models == "golden") {
    props = "unet=" + talker::test::golden("unet_small/unet.pth") +
            " unet-config=" + talker::test::golden("unet_small/config.json") +
            " vae=" + talker::test::golden(decoder == "taesd" ? "taesd" : "vae_small");
  } else {
    props = "unet=" + models + "/musetalkV15/unet.pth vae=" + models +
            (decoder == "taesd" ? "/taesd" : "/sd-vae");
    avatar = models + "/../avatars/demo";
  }
  props += " avatar=" + avatar + " decoder=" + decoder + " batch-size=" + std::to_string(batch) +
           " device=" + device + " dtype=" + dtype +
           " inference-latency-ms=" + std::to_string(latency_ms);
  talker::nn::apply_thread_policy();  // what musetalklipsync applies when it loads
  std::printf("models %s, decoder %s, %s %s, batch %d per session, %d torch threads, %.0f s each\n",
              models.c_str(), decoder.c_str(), device.c_str(), dtype.c_str(), batch,
              torch::get_num_threads(), seconds);
  std::printf("%8s %7s %10s %9s %11s %12s %12s %9s %10s\n", "sessions", "shared", "gen. fps",
              "fps/sess", "generated %", "worst late", "sink drops", "latency", "avg run");
  for (int shared : numbers(shared_arg)) {
    for (int n : numbers(sessions_arg)) {
      std::vector<std::unique_ptr<Session>> sessions;
      for (int i = 0; i < n; ++i)
        sessions.push_back(std::make_unique<Session>(
            props + " shared-batch-size=" + std::to_string(shared), width));
      for (auto &s : sessions)
        if (!s->start()) {
          std::fprintf(stderr, "session failed to start: %s\n", s->error().c_str());
          return 1;
        }
      // Past the start-up (model load, warm-up, first batches), then measure.
      std::this_thread::sleep_for(std::chrono::seconds(3));
      std::vector<Counters> before;
      for (auto &s : sessions) before.push_back(s->counters());
      std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
      std::vector<Counters> after;
      for (auto &s : sessions) after.push_back(s->counters());
      for (auto &s : sessions) s->stop();
      for (auto &s : sessions)
        if (std::string e = s->error(); !e.empty()) {
          std::fprintf(stderr, "a session failed: %s\n", e.c_str());
          return 1;
        }

      guint64 generated = 0, asked = 0, dropped = 0;
      double worst = 0, least_share = 1, latency = 0;
      for (int i = 0; i < n; ++i) {
        const guint64 g = after[i].generated - before[i].generated;
        const guint64 k = after[i].skipped - before[i].skipped;
        generated += g;
        asked += g + k;
        dropped += after[i].dropped - before[i].dropped;
        worst = std::max(worst, after[i].worst_lateness_ms);
        latency = std::max(latency, after[i].latency_ms);
        if (g + k) least_share = std::min(least_share, double(g) / (g + k));
      }
      const double runs = double(after[0].shared_runs - before[0].shared_runs);
      const double frames = double(after[0].shared_frames - before[0].shared_frames);
      char share[32];
      std::snprintf(share, sizeof share, "%.0f (min %.0f)", asked ? 100.0 * generated / asked : 0,
                    100 * least_share);
      char run[16] = "-";
      if (runs > 0) std::snprintf(run, sizeof run, "%.1f fr", frames / runs);
      std::printf("%8d %7d %10.1f %9.2f %11s %9.0f ms %12llu %6.0f ms %10s\n", n, shared,
                  generated / seconds, generated / seconds / n, share, worst,
                  (unsigned long long)dropped, latency, run);
      std::fflush(stdout);
    }
  }
  return 0;
}
