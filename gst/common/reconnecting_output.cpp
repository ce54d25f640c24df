// SPDX-License-Identifier: LGPL-2.1-or-later
#include "gst/common/reconnecting_output.h"

#include <utility>

#include "lib/common/error.h"

GST_DEBUG_CATEGORY_STATIC(reconnecting_output_debug);
#define GST_CAT_DEFAULT reconnecting_output_debug

namespace talker::gst {
namespace {

constexpr const char *kStageMark = "talker-output-stage";

bool from_stage(GstObject *src) {
  GstObject *obj = src ? GST_OBJECT(gst_object_ref(src)) : nullptr;
  while (obj) {
    if (g_object_get_data(G_OBJECT(obj), kStageMark)) {
      gst_object_unref(obj);
      return true;
    }
    GstObject *parent = gst_object_get_parent(obj);
    gst_object_unref(obj);
    obj = parent;
  }
  return false;
}

bool is_descendant(GstObject *src, GstElement *ancestor) {
  return ancestor && src &&
         (src == GST_OBJECT(ancestor) || gst_object_has_as_ancestor(src, GST_OBJECT(ancestor)));
}

}  // namespace

ReconnectingOutput::ReconnectingOutput(GstBin *bin, WireFormat wire, const char *message_name)
    : bin_(bin),
      gate_([this](GstFlowReturn ret) {
        session_failed(std::string("the output stage returned ") + gst_flow_get_name(ret));
      }),
      wire_(wire),
      message_name_(message_name) {
  static gsize once = 0;
  if (g_once_init_enter(&once)) {
    GST_DEBUG_CATEGORY_INIT(reconnecting_output_debug, "talkeroutput", 0,
                            "talkerrtmpsink/talkerwhipsink sessions and reconnects");
    g_once_init_leave(&once, 1);
  }
}

ReconnectingOutput::~ReconnectingOutput() {
  stop();
  for (auto &t : tracks_)
    if (t->wire_caps) gst_caps_unref(t->wire_caps);
}

GstPad *ReconnectingOutput::request_pad(GstPadTemplate *templ, MediaKind kind) {
  std::unique_ptr<Track> track(new Track{kind});
  {
    std::lock_guard<std::mutex> l(lock_);
    for (auto &t : tracks_)
      if (t->kind == kind) return nullptr;  // one video and one audio track
  }
  const char *name = kind == MediaKind::kVideo ? "video" : "audio";
  GstPad *pad = gst_ghost_pad_new_no_target_from_template(name, templ);
  track->pad = pad;
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, &ReconnectingOutput::caps_probe,
                    track.get(), nullptr);
  g_object_set_data(G_OBJECT(pad), "talker-output", this);
  {
    std::lock_guard<std::mutex> l(lock_);
    tracks_.push_back(std::move(track));
  }
  gst_pad_set_active(pad, TRUE);
  gst_element_add_pad(GST_ELEMENT(bin_), pad);
  return pad;
}

void ReconnectingOutput::release_pad(GstPad *pad) {
  {
    std::lock_guard<std::mutex> l(lock_);
    for (auto it = tracks_.begin(); it != tracks_.end(); ++it)
      if ((*it)->pad == pad) {
        if ((*it)->wire_caps) gst_caps_unref((*it)->wire_caps);
        tracks_.erase(it);
        break;
      }
  }
  gst_element_remove_pad(GST_ELEMENT(bin_), pad);
}

GstPadProbeReturn ReconnectingOutput::caps_probe(GstPad *pad, GstPadProbeInfo *info,
                                                 gpointer data) {
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT(info);
  auto *self = static_cast<ReconnectingOutput *>(g_object_get_data(G_OBJECT(pad), "talker-output"));
  auto *track = static_cast<Track *>(data);
  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) self->on_eos(track);
  if (GST_EVENT_TYPE(event) == GST_EVENT_FLUSH_STOP) {
    std::lock_guard<std::mutex> l(self->lock_);
    track->eos = false;
  }
  if (GST_EVENT_TYPE(event) != GST_EVENT_CAPS) return GST_PAD_PROBE_OK;
  if (track->tail) return GST_PAD_PROBE_OK;  // a caps change: the encoders follow it
  GstCaps *caps = nullptr;
  gst_event_parse_caps(event, &caps);
  try {
    self->on_caps(track, caps);
  } catch (const Error &e) {
    GST_ELEMENT_ERROR(self->bin_, STREAM, FORMAT, ("%s", e.what()),
                      ("on pad %s", GST_PAD_NAME(pad)));
    return GST_PAD_PROBE_DROP;
  }
  return GST_PAD_PROBE_OK;
}

void ReconnectingOutput::on_caps(Track *track, GstCaps *caps) {
  Branch branch = build_branch(bin_, track->kind, caps, wire_, encoder,
                               rtp_ssrcs[track->kind == MediaKind::kVideo ? 0 : 1]);
  gst_ghost_pad_set_target(GST_GHOST_PAD(track->pad), branch.sink);
  gst_object_unref(branch.sink);
  // Until a stage is linked (or while it is replaced) the tail's output has
  // nowhere to go: drop it there rather than fail upstream with NOT_LINKED.
  GstPad *src = gst_element_get_static_pad(branch.tail, "src");
  gst_pad_add_probe(
      src, GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
      [](GstPad *pad, GstPadProbeInfo *, gpointer) {
        return gst_pad_is_linked(pad) ? GST_PAD_PROBE_OK : GST_PAD_PROBE_DROP;
      },
      nullptr, nullptr);
  gst_object_unref(src);
  // The branch's elements follow the bin's state from the tail back.
  GstIterator *it = gst_bin_iterate_sorted(bin_);
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    auto *e = GST_ELEMENT(g_value_get_object(&item));
    if (!g_object_get_data(G_OBJECT(e), kStageMark)) gst_element_sync_state_with_parent(e);
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
  GST_INFO_OBJECT(bin_, "%s track: %s", track->kind == MediaKind::kVideo ? "video" : "audio",
                  branch.encodes ? "encoding" : "already encoded, parsing only");
  std::lock_guard<std::mutex> l(lock_);
  track->tail = branch.tail;
  wake_.notify_all();
}

void ReconnectingOutput::on_eos(Track *track) {
  std::lock_guard<std::mutex> l(lock_);
  track->eos = true;
  for (auto &t : tracks_)
    if (!t->eos) return;
  eos_ = true;
  wake_.notify_all();
}

// Every input ended: let the stage flush (rtmp2sink sends its stop commands
// and posts EOS), then post EOS for the whole bin, whether or not a session
// is up, so that the pipeline's EOS never waits on a network.
void ReconnectingOutput::finish_stream() {
  if (stage() && stage_posts_eos()) {
    std::unique_lock<std::mutex> l(lock_);
    wake_.wait_for(l, std::chrono::seconds(3), [&] { return stopping_ || stage_eos_; });
  }
  GST_INFO_OBJECT(bin_, "all inputs ended: EOS");
  gst_element_post_message(GST_ELEMENT(bin_), gst_message_new_eos(GST_OBJECT(bin_)));
  std::unique_lock<std::mutex> l(lock_);
  state_ = "ended";
  wake_.wait(l, [&] { return stopping_; });
}

bool ReconnectingOutput::tracks_ready_locked() const {
  if (tracks_.empty()) return false;
  for (auto &t : tracks_)
    if (!t->tail) return false;
  return true;
}

std::vector<ReconnectingOutput::Track> ReconnectingOutput::tracks_snapshot() const {
  std::lock_guard<std::mutex> l(lock_);
  std::vector<Track> out;
  for (auto &t : tracks_) out.push_back(*t);
  return out;
}

void ReconnectingOutput::start() {
  std::lock_guard<std::mutex> l(lock_);
  if (worker_.joinable()) return;
  stopping_ = false;
  eos_ = stage_eos_ = false;
  for (auto &t : tracks_) t->eos = false;
  state_ = "idle";
  worker_ = std::thread([this] { worker(); });
}

void ReconnectingOutput::stop() {
  {
    std::lock_guard<std::mutex> l(lock_);
    stopping_ = true;
    wake_.notify_all();
  }
  interrupt();
  if (worker_.joinable()) worker_.join();
  remove_stage();
}

void ReconnectingOutput::worker() {
  net::Backoff backoff(retry.first_delay_ms, retry.max_delay_ms);
  unsigned attempt = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> l(lock_);
      wake_.wait(l, [&] { return stopping_ || eos_ || tracks_ready_locked(); });
      if (stopping_) break;
      if (eos_) {
        l.unlock();
        finish_stream();
        break;
      }
      failed_ = false;
      failure_reason_.clear();
      attempt_ = attempt;
    }
    post_state("connecting", gst_structure_new("s", "attempt", G_TYPE_UINT, attempt, nullptr));
    const guint sessions_before = sessions_;
    SessionEnd end = run_session(attempt);
    bool ended;
    {
      std::lock_guard<std::mutex> l(lock_);
      ended = eos_ && !stopping_;
    }
    if (ended) {
      finish_stream();
      break;
    }
    remove_stage();
    if (stopping()) break;
    if (end.reason.empty()) end.reason = failure_reason();
    const bool was_connected = sessions_ != sessions_before;
    attempt = was_connected ? 1 : attempt + 1;
    const bool exhausted = retry.max_retries >= 0 && attempt > guint(retry.max_retries);
    if (end.fatal || exhausted) {
      GstStructure *f = gst_structure_new("s", "reason", G_TYPE_STRING, end.reason.c_str(),
                                          "http-status", G_TYPE_UINT, end.http_status, "body",
                                          G_TYPE_STRING, end.body_start.c_str(), nullptr);
      post_state("failed", f);
      const std::string why =
          end.fatal ? end.reason
                    : "gave up after " + std::to_string(attempt - 1) + " retries: " + end.reason;
      GST_ELEMENT_ERROR(
          bin_, RESOURCE, WRITE, ("%s: %s", public_location().c_str(), why.c_str()),
          ("HTTP status %u; answer starts: %s", end.http_status, end.body_start.c_str()));
      std::lock_guard<std::mutex> l(lock_);
      state_ = "failed";
      break;
    }
    const guint delay = backoff.delay_ms(attempt, end.retry_after_ms);
    GST_WARNING_OBJECT(bin_, "session ended (%s); retry %u in %u ms", end.reason.c_str(), attempt,
                       delay);
    post_state("reconnecting",
               gst_structure_new("s", "attempt", G_TYPE_UINT, attempt, "delay-ms", G_TYPE_UINT,
                                 delay, "reason", G_TYPE_STRING, end.reason.c_str(), "http-status",
                                 G_TYPE_UINT, end.http_status, nullptr));
    std::unique_lock<std::mutex> l(lock_);
    state_ = "reconnecting";
    attempt_ = attempt;
    wake_.wait_for(l, std::chrono::milliseconds(delay), [&] { return stopping_ || eos_; });
    if (stopping_) break;
    if (eos_) {
      l.unlock();
      finish_stream();
      break;
    }
  }
}

void ReconnectingOutput::install_stage(GstElement *stage) {
  g_object_set_data(G_OBJECT(stage), kStageMark, GINT_TO_POINTER(1));
  // A sink added to a playing pipeline that prerolls asynchronously would
  // take the whole pipeline back to PAUSED ("lost state"), where live sources
  // stop: no media, no preroll, a silent stall. The stage settles alone.
  if (GST_IS_BIN(stage)) g_object_set(stage, "async-handling", TRUE, nullptr);
  gst_bin_add(bin_, stage);
  std::vector<std::pair<GstPad *, GstPad *>> links;  // tail src, stage pad
  unsigned index = 0;
  for (const Track &t : tracks_snapshot()) {
    GstPad *target = stage_target(stage, t, index);
    const char *name = t.kind == MediaKind::kVideo ? "video" : "audio";
    GstPad *ghost = gate_.make_pad(name, target, t.kind);
    gst_object_unref(target);
    gst_pad_set_active(ghost, TRUE);
    gst_element_add_pad(stage, ghost);
    links.emplace_back(gst_element_get_static_pad(t.tail, "src"), ghost);
    ++index;
  }
  {
    std::lock_guard<std::mutex> l(lock_);
    stage_ = stage;
    stage_eos_ = false;
  }
  // Running before it is linked: media (and its sticky events) must never
  // meet the stage's pads while they are still flushing.
  gst_element_sync_state_with_parent(stage);
  for (auto &[src, ghost] : links) {
    if (gst_pad_link(src, ghost) != GST_PAD_LINK_OK)
      GST_ERROR_OBJECT(bin_, "cannot link %s to the stage", GST_PAD_NAME(ghost));
    gst_object_unref(src);
  }
}

void ReconnectingOutput::remove_stage() {
  gate_.close();
  GstElement *stage;
  {
    std::lock_guard<std::mutex> l(lock_);
    stage = stage_;
    stage_ = nullptr;
  }
  if (!stage) return;
  // Unlinked first (the tails then drop what they make), stopped second: a
  // buffer never meets the stage's pads while they deactivate.
  for (const Track &t : tracks_snapshot()) {
    GstPad *src = gst_element_get_static_pad(t.tail, "src");
    GstPad *peer = gst_pad_get_peer(src);
    if (peer) {
      gst_pad_unlink(src, peer);
      gst_object_unref(peer);
    }
    gst_object_unref(src);
  }
  gst_element_set_locked_state(stage, TRUE);
  gst_element_set_state(stage, GST_STATE_NULL);
  gst_bin_remove(bin_, stage);
}

bool ReconnectingOutput::wait_until(const std::function<bool()> &done,
                                    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock<std::mutex> l(lock_);
  for (;;) {
    if (stopping_ || failed_ || eos_) return false;
    l.unlock();
    const bool finished = done();
    l.lock();
    if (finished) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    wake_.wait_until(l, std::min(deadline, now + std::chrono::milliseconds(50)));
  }
}

void ReconnectingOutput::session_failed(const std::string &reason) {
  std::lock_guard<std::mutex> l(lock_);
  if (failed_) return;
  failed_ = true;
  failure_reason_ = reason;
  gate_.close();  // drop media while down
  wake_.notify_all();
}

bool ReconnectingOutput::failed() const {
  std::lock_guard<std::mutex> l(lock_);
  return failed_;
}

bool ReconnectingOutput::stopping() const {
  std::lock_guard<std::mutex> l(lock_);
  return stopping_;
}

std::string ReconnectingOutput::failure_reason() const {
  std::lock_guard<std::mutex> l(lock_);
  return failure_reason_;
}

void ReconnectingOutput::connected(GstStructure *details) {
  {
    std::lock_guard<std::mutex> l(lock_);
    ++sessions_;
    state_ = "connected";
  }
  if (!gate_.is_open()) gate_.open();
  post_state("connected", details);
}

void ReconnectingOutput::post_state(const char *state, GstStructure *fields) {
  GstStructure *s = fields ? fields : gst_structure_new_empty("s");
  gst_structure_set(s, "location", G_TYPE_STRING, public_location().c_str(), nullptr);
  {
    std::lock_guard<std::mutex> l(lock_);
    if (g_str_equal(state, "connecting")) state_ = state;
  }
  GST_INFO_OBJECT(bin_, "%s", state);
  post_output_state(GST_ELEMENT(bin_), message_name_.c_str(), state, s);
}

bool ReconnectingOutput::swallow_message(GstMessage *message) {
  if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_EOS && from_stage(GST_MESSAGE_SRC(message))) {
    // The bin posts its own EOS (finish_stream), stage or no stage.
    std::lock_guard<std::mutex> l(lock_);
    stage_eos_ = true;
    wake_.notify_all();
    return true;
  }
  if (GST_MESSAGE_TYPE(message) != GST_MESSAGE_ERROR || !from_stage(GST_MESSAGE_SRC(message)))
    return false;
  GError *error = nullptr;
  gchar *debug = nullptr;
  gst_message_parse_error(message, &error, &debug);
  GST_WARNING_OBJECT(bin_, "stage error: %s (%s)", error->message, debug ? debug : "");
  bool current;
  {
    std::lock_guard<std::mutex> l(lock_);
    current = is_descendant(GST_MESSAGE_SRC(message), stage_);
  }
  if (current) session_failed(error->message);
  g_error_free(error);
  g_free(debug);
  return true;
}

GstStructure *ReconnectingOutput::common_stats() const {
  std::lock_guard<std::mutex> l(lock_);
  return gst_structure_new("stats", "state", G_TYPE_STRING, state_.c_str(), "attempt", G_TYPE_UINT,
                           attempt_, "sessions", G_TYPE_UINT, sessions_, "buffers-dropped",
                           G_TYPE_UINT64, gate_.buffers_dropped(), nullptr);
}

}  // namespace talker::gst
