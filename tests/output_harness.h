// SPDX-License-Identifier: LGPL-2.1-or-later
// What the output tests share: a live source whose video flashes white on the
// same PTS as an audio beep, servers started on loopback (nginx with
// Debian's RTMP module, the WHIP endpoint with chromium behind it), and a bus
// reader that keeps the talker-* state messages and errors.
#pragma once

#include <arpa/inet.h>
#include <gst/gst.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gst/common/gst_ptr.h"
#include "tests/bus_error.h"

namespace talker::test {

constexpr GstClockTime kMarkPeriod = 2 * GST_SECOND;  // a flash and a beep every 2 s
constexpr GstClockTime kBeepLength = 100 * GST_MSECOND;

// Video: 320x240 I420 at 25 fps, black, white for the one frame whose PTS is a
// multiple of kMarkPeriod. Audio: 48 kHz mono, silent, a 1 kHz tone for
// kBeepLength from the same PTS. Both live, PTS from 0 in steps of their
// durations, so the marks share PTS exactly.
inline GstPadProbeReturn paint_flash(GstPad *, GstPadProbeInfo *info, gpointer) {
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
  const bool flash = GST_BUFFER_PTS(buf) % kMarkPeriod < 40 * GST_MSECOND;
  buf = gst_buffer_make_writable(buf);
  GstMapInfo map;
  gst_buffer_map(buf, &map, GST_MAP_WRITE);
  const size_t luma = 320 * 240;
  memset(map.data, flash ? 235 : 16, luma);
  memset(map.data + luma, 128, map.size - luma);
  gst_buffer_unmap(buf, &map);
  GST_PAD_PROBE_INFO_DATA(info) = buf;
  return GST_PAD_PROBE_OK;
}

inline GstPadProbeReturn gate_beep(GstPad *, GstPadProbeInfo *info, gpointer) {
  GstBuffer *buf = gst_buffer_make_writable(GST_PAD_PROBE_INFO_BUFFER(info));
  GstMapInfo map;
  gst_buffer_map(buf, &map, GST_MAP_WRITE);
  auto *s = reinterpret_cast<int16_t *>(map.data);
  const size_t n = map.size / 2;
  for (size_t i = 0; i < n; ++i) {
    const GstClockTime t = GST_BUFFER_PTS(buf) + gst_util_uint64_scale(i, GST_SECOND, 48000);
    if (t % kMarkPeriod >= kBeepLength) s[i] = 0;
  }
  gst_buffer_unmap(buf, &map);
  GST_PAD_PROBE_INFO_DATA(info) = buf;
  return GST_PAD_PROBE_OK;
}

// "videotestsrc … ! <sink>.video  audiotestsrc … ! <sink>.audio" for a sink
// element named `sink` described by `sink_desc`.
inline gst::GstPtr<GstElement> marked_pipeline(const std::string &sink_desc) {
  const std::string desc =
      sink_desc +
      " name=out videotestsrc is-live=true name=vsrc ! "
      "video/x-raw,format=I420,width=320,height=240,framerate=25/1 ! queue ! out.video "
      "audiotestsrc is-live=true wave=sine freq=1000 volume=0.5 samplesperbuffer=480 name=asrc ! "
      "audio/x-raw,format=S16LE,rate=48000,channels=1 ! queue ! out.audio";
  GError *error = nullptr;
  gst::GstPtr<GstElement> p(gst_parse_launch(desc.c_str(), &error));
  if (error) throw std::runtime_error(std::string("pipeline: ") + error->message);
  for (auto [name, probe] : {std::pair{"vsrc", &paint_flash}, std::pair{"asrc", &gate_beep}}) {
    gst::GstPtr<GstElement> src(gst_bin_get_by_name(GST_BIN(p.get()), name));
    gst::GstPtr<GstPad> pad(gst_element_get_static_pad(src.get(), "src"));
    gst_pad_add_probe(pad.get(), GST_PAD_PROBE_TYPE_BUFFER, probe, nullptr, nullptr);
  }
  return p;
}

// Sets a pipeline to NULL when the scope ends, also when a REQUIRE leaves
// it early (a playing pipeline dropped while its output thread runs aborts).
struct NullOnExit {
  GstElement *pipeline;
  ~NullOnExit() { gst_element_set_state(pipeline, GST_STATE_NULL); }
};

// Element messages named `name` ("talker-rtmp", "talker-whip") and errors,
// read from the bus while a pipeline runs.
struct BusLog {
  std::vector<std::string> states;    // the "state" field of each message, in order
  std::vector<std::string> messages;  // each as text
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
  std::vector<std::chrono::steady_clock::time_point> times;  // of each state

  // Reads the bus for `duration`, or until `until` says stop (checked after
  // each message and every 100 ms).
  template <typename Until>
  void read(GstElement *pipeline, const char *name, std::chrono::milliseconds duration,
            Until until) {
    gst::GstPtr<GstBus> bus(gst_element_get_bus(pipeline));
    const auto end = std::chrono::steady_clock::now() + duration;
    while (std::chrono::steady_clock::now() < end && !until()) {
      gst::GstPtr<GstMessage> msg(gst_bus_timed_pop(bus.get(), 100 * GST_MSECOND));
      if (!msg) continue;
      if (GST_MESSAGE_TYPE(msg.get()) == GST_MESSAGE_ERROR) errors.push_back(error_text(msg.get()));
      if (GST_MESSAGE_TYPE(msg.get()) == GST_MESSAGE_WARNING) {
        GError *e = nullptr;
        gst_message_parse_warning(msg.get(), &e, nullptr);
        warnings.push_back(e->message);
        g_error_free(e);
      }
      const GstStructure *s = gst_message_get_structure(msg.get());
      if (GST_MESSAGE_TYPE(msg.get()) == GST_MESSAGE_ELEMENT && s &&
          gst_structure_has_name(s, name)) {
        states.push_back(gst_structure_get_string(s, "state"));
        times.push_back(std::chrono::steady_clock::now());
        gchar *text = gst_structure_to_string(s);
        messages.push_back(text);
        g_free(text);
      }
    }
  }
  void read(GstElement *pipeline, const char *name, std::chrono::milliseconds duration) {
    read(pipeline, name, duration, [] { return false; });
  }
  size_t count(const std::string &state) const {
    size_t n = 0;
    for (auto &s : states) n += s == state;
    return n;
  }
};

// A TCP (or, with SOCK_DGRAM, UDP) port nothing listens on now (bound, then released).
inline int free_port(int type = SOCK_STREAM) {
  const int fd = socket(AF_INET, type, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// A child process, killed (SIGTERM, then SIGKILL) when this goes away, and
// by the kernel when the test process dies first. Its stderr goes to
// `log_path` (never to the test's own, which meson waits on: a lingering
// grandchild would hold the run open).
class Child {
 public:
  Child() = default;
  explicit Child(const std::vector<std::string> &argv, int *stdout_fd = nullptr,
                 const std::string &log_path = "/dev/null") {
    int pipe_fds[2] = {-1, -1};
    if (stdout_fd && pipe(pipe_fds) != 0) throw std::runtime_error("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int devnull = open("/dev/null", O_RDWR);
      const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(devnull, 0);
      dup2(stdout_fd ? pipe_fds[1] : log, 1);
      dup2(log, 2);
      if (stdout_fd) close(pipe_fds[0]);
      setpgid(0, 0);
      std::vector<char *> args;
      for (auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
      args.push_back(nullptr);
      execvp(args[0], args.data());
      _exit(127);
    }
    if (stdout_fd) {
      close(pipe_fds[1]);
      *stdout_fd = pipe_fds[0];
    }
  }
  Child(Child &&o) noexcept : pid_(o.pid_) { o.pid_ = -1; }
  Child &operator=(Child &&o) noexcept {
    stop();
    pid_ = o.pid_;
    o.pid_ = -1;
    return *this;
  }
  ~Child() { stop(); }
  void stop() {
    if (pid_ <= 0) return;
    kill(-pid_, SIGTERM);
    for (int i = 0; i < 50; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    kill(-pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  bool running() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }
  void signal(int sig) {
    if (pid_ > 0) ::kill(-pid_, sig);
  }

 private:
  pid_t pid_ = -1;
};

inline bool port_open(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// nginx with Debian's libnginx-mod-rtmp on 127.0.0.1:port, recording every
// publish to its own FLV file in dir.
class NginxRtmp {
 public:
  NginxRtmp(const std::string &dir, int port) : dir_(dir), port_(port) {
    std::ofstream conf(dir + "/nginx.conf");
    conf << "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n"
            "daemon off;\nmaster_process off;\n"
         << "pid " << dir << "/nginx.pid;\nerror_log " << dir << "/error.log info;\n"
         << "events { worker_connections 64; }\n"
         << "rtmp { server { listen 127.0.0.1:" << port
         << "; application live { live on; record all; record_path " << dir
         << "; record_unique on; } } }\n";
    conf.close();
    start();
  }
  void start() {
    child_ = Child({"nginx", "-c", dir_ + "/nginx.conf", "-p", dir_ + "/"}, nullptr,
                   dir_ + "/stderr.log");
    for (int i = 0; i < 100 && !port_open(port_); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!port_open(port_)) throw std::runtime_error("nginx did not start: see " + dir_);
  }
  void stop() { child_.stop(); }
  std::vector<std::string> recordings() const {
    std::vector<std::string> files;
    GDir *d = g_dir_open(dir_.c_str(), 0, nullptr);
    while (const char *name = d ? g_dir_read_name(d) : nullptr)
      if (g_str_has_suffix(name, ".flv")) files.push_back(dir_ + "/" + name);
    if (d) g_dir_close(d);
    std::sort(files.begin(), files.end());
    return files;
  }

 private:
  std::string dir_;
  int port_;
  Child child_;
};

// The real SRS (../shared/srs/srs, SRS 7.0.18 built for Debian 12) on
// loopback with ports of its own, run from a working folder in `dir`, with
// rtc_to_rtmp (a WHIP publish is readable as HTTP-FLV) and rtmp_to_rtc.
// kill() and restart() as an operator would; freeze()/thaw() with SIGSTOP.
class Srs {
 public:
  static std::string binary() {
    const char *env = g_getenv("TALKER_SRS");
    if (env) return env;
    return std::string(TALKER_SOURCE_ROOT) + "/../shared/srs/srs";
  }
  static bool available() { return g_file_test(binary().c_str(), G_FILE_TEST_IS_EXECUTABLE); }

  explicit Srs(const std::string &dir)
      : dir_(dir),
        rtmp_(free_port()),
        http_(free_port()),
        api_(free_port()),
        rtc_(free_port(SOCK_DGRAM)) {
    g_mkdir_with_parents((dir + "/html").c_str(), 0755);
    std::ofstream conf(dir + "/srs.conf");
    conf << "listen 127.0.0.1:" << rtmp_ << ";\nmax_connections 100;\ndaemon off;\n"
         << "srs_log_tank console;\npid ./srs.pid;\n"
         << "http_server { enabled on; listen 127.0.0.1:" << http_ << "; dir ./html; }\n"
         << "http_api { enabled on; listen 127.0.0.1:" << api_ << "; }\n"
         << "stats { network 0; }\n"
         << "rtc_server { enabled on; listen " << rtc_ << "; candidate 127.0.0.1; }\n"
         << "vhost __defaultVhost__ {\n"
         << "  rtc { enabled on; rtmp_to_rtc on; rtc_to_rtmp on; }\n"
         << "  http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }\n}\n";
    conf.close();
    start();
  }
  void start() {
    // SRS reads its config relative to its working folder.
    child_ = Child({"sh", "-c", "cd '" + dir_ + "' && exec '" + binary() + "' -c srs.conf"},
                   nullptr, dir_ + "/srs.log");
    for (int i = 0; i < 200 && !port_open(api_); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!port_open(api_)) throw std::runtime_error("SRS did not start: see " + dir_ + "/srs.log");
  }
  void kill() { child_.stop(); }
  void freeze() { child_.signal(SIGSTOP); }
  void thaw() { child_.signal(SIGCONT); }
  std::string whip_url(const std::string &stream) const {
    return "http://127.0.0.1:" + std::to_string(api_) + "/rtc/v1/whip/?app=live&stream=" + stream;
  }
  std::string whep_url(const std::string &stream) const {
    return "http://127.0.0.1:" + std::to_string(api_) + "/rtc/v1/whep/?app=live&stream=" + stream;
  }
  std::string flv_url(const std::string &stream) const {
    return "http://127.0.0.1:" + std::to_string(http_) + "/live/" + stream + ".flv";
  }
  std::string rtmp_url(const std::string &stream) const {
    return "rtmp://127.0.0.1:" + std::to_string(rtmp_) + "/live/" + stream;
  }
  std::string api_url(const std::string &path) const {
    return "http://127.0.0.1:" + std::to_string(api_) + path;
  }
  const std::string &dir() const { return dir_; }

  // Records the stream's HTTP-FLV (what a viewer or an RTMP relay gets)
  // to `file` until stopped.
  Child record_flv(const std::string &stream, const std::string &file) const {
    return Child({"curl", "-s", "-N", "--max-time", "900", "-o", file, flv_url(stream)}, nullptr,
                 dir_ + "/curl.log");
  }

 private:
  std::string dir_;
  int rtmp_, http_, api_, rtc_;
  Child child_;
};

// Marks found in decoded media: PTS of flashes (frames turning bright) and of
// beep onsets (first loud sample after 300 ms of quiet), in seconds.
struct Marks {
  std::vector<double> flashes, beeps;
  double video_end = 0, audio_end = 0;  // end of the last frame/sample
  int frames = 0;
  size_t samples = 0;
};

// Decodes an FLV recording and finds its marks.
inline Marks marks_of_flv(const std::string &path) {
  const std::string desc =
      "filesrc location=\"" + path +
      "\" ! flvdemux name=d "
      "d.video ! queue ! h264parse ! avdec_h264 ! videoconvert ! video/x-raw,format=GRAY8 ! "
      "appsink name=v sync=false "
      "d.audio ! queue ! aacparse ! avdec_aac ! audioconvert ! audioresample ! "
      "audio/x-raw,format=F32LE,channels=1,rate=48000 ! appsink name=a sync=false";
  GError *error = nullptr;
  gst::GstPtr<GstElement> p(gst_parse_launch(desc.c_str(), &error));
  if (error) throw std::runtime_error(error->message);
  Marks m;
  bool bright = false;
  size_t quiet = 1000000;
  auto on_sample = [&](GstElement *sink, bool video) {
    // A file without one of the tracks never gives that appsink EOS: a
    // track that has nothing for 5 s has ended.
    GstSample *sample = nullptr;
    g_signal_emit_by_name(sink, "try-pull-sample", GstClockTime(5 * GST_SECOND), &sample);
    if (!sample) return false;
    GstBuffer *buf = gst_sample_get_buffer(sample);
    GstMapInfo map;
    gst_buffer_map(buf, &map, GST_MAP_READ);
    const double pts = double(GST_BUFFER_PTS(buf)) / GST_SECOND;
    if (video) {
      double sum = 0;
      for (size_t i = 0; i < 320 * 240 && i < map.size; ++i) sum += map.data[i];
      const bool now = sum / (320 * 240) > 128;
      if (now && !bright) m.flashes.push_back(pts);
      bright = now;
      ++m.frames;
      m.video_end = pts + double(GST_BUFFER_DURATION(buf)) / GST_SECOND;
    } else {
      const auto *x = reinterpret_cast<const float *>(map.data);
      const size_t n = map.size / 4;
      for (size_t i = 0; i < n; ++i) {
        if (std::fabs(x[i]) > 0.05f) {
          if (quiet > 48000 * 3 / 10) m.beeps.push_back(pts + double(i) / 48000);
          quiet = 0;
        } else {
          ++quiet;
        }
      }
      m.samples += n;
      m.audio_end = pts + double(n) / 48000;
    }
    gst_buffer_unmap(buf, &map);
    gst_sample_unref(sample);
    return true;
  };
  gst::GstPtr<GstElement> v(gst_bin_get_by_name(GST_BIN(p.get()), "v"));
  gst::GstPtr<GstElement> a(gst_bin_get_by_name(GST_BIN(p.get()), "a"));
  gst_element_set_state(p.get(), GST_STATE_PLAYING);
  // Pull both until each reaches EOS (appsink queues are bounded: alternate).
  bool v_done = false, a_done = false;
  while (!v_done || !a_done) {
    if (!v_done) v_done = !on_sample(v.get(), true);
    if (!a_done) a_done = !on_sample(a.get(), false);
  }
  gst_element_set_state(p.get(), GST_STATE_NULL);
  return m;
}

// This process's resident memory, MiB; its open fds and threads.
inline double rss_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024;
  return 0;
}
// Entries of a /proc folder (fds, tasks).
inline int count_entries(const char *folder) {
  int n = 0;
  GDir *d = g_dir_open(folder, 0, nullptr);
  while (d && g_dir_read_name(d)) ++n;
  if (d) g_dir_close(d);
  return n;
}
inline int open_fds() {
  return count_entries("/proc/self/fd");
}
inline int threads() {
  return count_entries("/proc/self/task");
}
// Least-squares slope of `y` per step (MiB per minute for per-minute samples).
inline double slope(const std::vector<double> &y) {
  const double n = double(y.size());
  if (y.size() < 2) return 0;
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    sx += double(i);
    sy += y[i];
    sxx += double(i) * double(i);
    sxy += double(i) * y[i];
  }
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

// For each flash, the offset (beep minus flash) to the nearest beep within
// `window` (half a period; in the unit of the times).
inline std::vector<double> mark_offsets(const std::vector<double> &flashes,
                                        const std::vector<double> &beeps, double window = 1.0) {
  std::vector<double> out;
  for (double f : flashes) {
    double best = 1e9;
    for (double b : beeps)
      if (std::fabs(b - f) < std::fabs(best)) best = b - f;
    if (std::fabs(best) < window) out.push_back(best);
  }
  return out;
}

}  // namespace talker::test
