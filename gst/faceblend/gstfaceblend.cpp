// SPDX-License-Identifier: LGPL-2.1-or-later
/**
 * SECTION:element-faceblend
 *
 * Pastes generated faces back into the avatar's frames. Input: the faces of
 * musetalklipsync with their TalkerFaceMeta; output: the avatar frame the
 * meta names, at the avatar's size, with the face resized into the face box
 * and blended through the frame's feathered mask inside its crop box
 * (MuseTalk's paste-back). Idle frames are the avatar frame itself, passed
 * on without a copy. transition-ms cross-fades between the two.
 *
 * Action clips: an avatar folder may hold actions/<name>/frames/. A
 * `talker-clip` event (talkertts's say-clip, in order with the audio) makes
 * the clip's frames replace the output from its timestamp for its duration
 * (ping-pong when the sound outlasts the frames), then the picture
 * cross-fades back over transition-ms. A `talker-interrupt` ends a clip at
 * its timestamp. A clip named "idle" loops while nothing is said, the
 * speaking avatar cross-fading in over it when speech starts.
 */
#include "gst/faceblend/gstfaceblend.h"

#include <gst/video/video.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "gst/common/clip_event.h"
#include "gst/common/face_meta.h"
#include "gst/common/interrupt_event.h"
#include "lib/avatar/avatar_frames.h"
#include "lib/common/shared_cache.h"

GST_DEBUG_CATEGORY_STATIC(faceblend_debug);
#define GST_CAT_DEFAULT faceblend_debug

using talker::avatar::AvatarFrames;

namespace {

struct Settings {
  std::string avatar;
  guint transition_ms = 0;
};

talker::SharedCache<const AvatarFrames> &frames_cache() {
  static talker::SharedCache<const AvatarFrames> cache;
  return cache;
}

// A clip announced by a talker-clip event, shown over [start, end) in PTS.
struct ScheduledClip {
  std::string name;
  const std::vector<cv::Mat> *frames;
  GstClockTime start, end;
};

// Frame `i` of a clip of `n` frames played forwards and back (MuseTalk's
// and LiveTalking's mirror index).
size_t ping_pong(size_t n, guint64 i) {
  if (n <= 1) return 0;
  const guint64 period = 2 * (n - 1), k = i % period;
  return size_t(k < n ? k : period - k);
}

struct FaceBlendState {
  std::mutex settings_lock;
  Settings settings;
  Settings active;
  std::shared_ptr<const AvatarFrames> avatar;
  GstVideoInfo in_info, out_info;
  int level = 0;      // 0 idle … 255 speaking: the face's weight during cross-fades
  cv::Mat last_face;  // the last generated face, for fading out
  bool blend_pending = false;
  bool fresh_face = false;  // this frame brings a newly generated face
  gint64 frame_index = 0;
  // Action clips (streaming thread only).
  std::deque<ScheduledClip> clips;
  const cv::Mat *clip_image = nullptr;  // this frame's clip picture, or the last one while fading
  int clip_level = 0;                   // 255 while a clip plays, falling after it
  const std::vector<cv::Mat> *idle_clip = nullptr;
  const cv::Mat *idle_image = nullptr;  // this frame's idle clip picture
  guint64 idle_count = 0;
};

}  // namespace

struct _GstFaceBlend {
  GstBaseTransform parent;
  FaceBlendState *state;
};

G_DEFINE_TYPE(GstFaceBlend, gst_face_blend, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE(faceblend, "faceblend", GST_RANK_NONE, GST_TYPE_FACE_BLEND);

enum { PROP_0, PROP_AVATAR, PROP_TRANSITION_MS };

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(GST_VIDEO_CAPS_MAKE("BGR")));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(GST_VIDEO_CAPS_MAKE("BGR")));

static FaceBlendState &state_of(GstBaseTransform *t) {
  return *GST_FACE_BLEND(t)->state;
}

static gboolean face_blend_start(GstBaseTransform *trans) {
  auto &st = state_of(trans);
  {
    std::lock_guard<std::mutex> l(st.settings_lock);
    st.active = st.settings;
  }
  if (st.active.avatar.empty()) {
    GST_ELEMENT_ERROR(trans, RESOURCE, NOT_FOUND, ("Property 'avatar' is not set"), (nullptr));
    return FALSE;
  }
  try {
    st.avatar = frames_cache().get(
        st.active.avatar, [&] { return talker::avatar::load_avatar_frames(st.active.avatar); });
    GST_INFO_OBJECT(trans, "avatar %s: %zu frames %dx%d, %.1f MiB", st.active.avatar.c_str(),
                    st.avatar->size(), st.avatar->width, st.avatar->height,
                    st.avatar->bytes() / 1048576.0);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(trans, RESOURCE, OPEN_READ, ("Could not load the avatar"), ("%s", e.what()));
    return FALSE;
  }
  st.level = 0;
  st.last_face.release();
  st.clips.clear();
  st.clip_image = st.idle_image = nullptr;
  st.clip_level = 0;
  st.idle_count = 0;
  const auto idle = st.avatar->clips.find("idle");
  st.idle_clip = idle != st.avatar->clips.end() && !idle->second.empty() ? &idle->second : nullptr;
  return TRUE;
}

static gboolean face_blend_sink_event(GstBaseTransform *trans, GstEvent *event) {
  auto &st = state_of(trans);
  gchar *name = nullptr;
  GstClockTime timestamp = GST_CLOCK_TIME_NONE, duration = 0;
  if (talker_clip_event_parse(event, &name, &timestamp, &duration)) {
    const auto clip =
        st.avatar ? st.avatar->clips.find(name ? name : "") : decltype(st.avatar->clips.end()){};
    if (!st.avatar || clip == st.avatar->clips.end() || clip->second.empty()) {
      GST_ELEMENT_WARNING(
          trans, STREAM, FAILED, ("No action clip named '%s'", name),
          ("the avatar %s has no actions/%s/frames/", st.active.avatar.c_str(), name));
    } else if (GST_CLOCK_TIME_IS_VALID(timestamp)) {
      GST_DEBUG_OBJECT(trans, "clip %s from %" GST_TIME_FORMAT " for %" GST_TIME_FORMAT, name,
                       GST_TIME_ARGS(timestamp), GST_TIME_ARGS(duration));
      st.clips.push_back({name, &clip->second, timestamp, timestamp + duration});
    }
    g_free(name);
  } else if (talker_event_is_interrupt(event)) {
    GstClockTime cut = GST_CLOCK_TIME_NONE;
    talker_interrupt_event_parse(event, &cut, nullptr, nullptr);
    for (auto &c : st.clips)
      if (GST_CLOCK_TIME_IS_VALID(cut) && c.end > cut) c.end = std::max(c.start, cut);
  } else if (GST_EVENT_TYPE(event) == GST_EVENT_FLUSH_STOP) {
    st.clips.clear();
    st.clip_level = 0;
    st.clip_image = nullptr;
  }
  return GST_BASE_TRANSFORM_CLASS(gst_face_blend_parent_class)->sink_event(trans, event);
}

// Which clip picture (and at what weight) and which idle-clip picture go
// into the frame at `pts`; `step` is one frame's share of the transition.
static void choose_clip_images(FaceBlendState &st, GstClockTime pts, int step) {
  st.idle_image = nullptr;
  if (st.idle_clip)
    st.idle_image = &(*st.idle_clip)[ping_pong(st.idle_clip->size(), st.idle_count++)];
  if (!GST_CLOCK_TIME_IS_VALID(pts)) return;
  while (!st.clips.empty() && st.clips.front().end <= pts) st.clips.pop_front();
  if (!st.clips.empty() && st.clips.front().start <= pts) {
    const ScheduledClip &c = st.clips.front();
    const int fps_n =
        GST_VIDEO_INFO_FPS_N(&st.in_info) > 0 ? GST_VIDEO_INFO_FPS_N(&st.in_info) : 25;
    const int fps_d = GST_VIDEO_INFO_FPS_D(&st.in_info) > 0 ? GST_VIDEO_INFO_FPS_D(&st.in_info) : 1;
    const guint64 i = gst_util_uint64_scale(pts - c.start, fps_n, GST_SECOND * fps_d);
    st.clip_image = &(*c.frames)[ping_pong(c.frames->size(), i)];
    st.clip_level = 255;
  } else if (st.clip_level > 0) {
    st.clip_level = std::max(0, st.clip_level - step);  // the last clip picture fades out
    if (st.clip_level == 0) st.clip_image = nullptr;
  }
}

static gboolean face_blend_stop(GstBaseTransform *trans) {
  state_of(trans).avatar.reset();
  return TRUE;
}

static GstCaps *face_blend_transform_caps(GstBaseTransform *trans, GstPadDirection direction,
                                          GstCaps *caps, GstCaps *filter) {
  auto &st = state_of(trans);
  GstCaps *out = gst_caps_copy(caps);
  for (guint i = 0; i < gst_caps_get_size(out); ++i) {
    GstStructure *s = gst_caps_get_structure(out, i);
    if (direction == GST_PAD_SINK && st.avatar)
      gst_structure_set(s, "width", G_TYPE_INT, st.avatar->width, "height", G_TYPE_INT,
                        st.avatar->height, nullptr);
    else
      gst_structure_set(s, "width", GST_TYPE_INT_RANGE, 1, G_MAXINT, "height", GST_TYPE_INT_RANGE,
                        1, G_MAXINT, nullptr);
  }
  if (filter) {
    GstCaps *tmp = gst_caps_intersect_full(filter, out, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref(out);
    out = tmp;
  }
  return out;
}

static gboolean face_blend_set_caps(GstBaseTransform *trans, GstCaps *incaps, GstCaps *outcaps) {
  auto &st = state_of(trans);
  return gst_video_info_from_caps(&st.in_info, incaps) &&
         gst_video_info_from_caps(&st.out_info, outcaps);
}

static void free_avatar_ref(gpointer p) {
  delete static_cast<std::shared_ptr<const AvatarFrames> *>(p);
}

static GstFlowReturn face_blend_prepare_output_buffer(GstBaseTransform *trans, GstBuffer *inbuf,
                                                      GstBuffer **outbuf) {
  auto &st = state_of(trans);
  const TalkerFaceMeta *meta = talker_buffer_get_face_meta(inbuf);
  if (!meta) {
    GST_ELEMENT_ERROR(trans, STREAM, FORMAT, ("Input without a face meta"),
                      ("faceblend takes the output of musetalklipsync, which says which avatar "
                       "frame each face is for"));
    return GST_FLOW_ERROR;
  }
  if (meta->avatar_frame < 0 || size_t(meta->avatar_frame) >= st.avatar->size()) {
    GST_ELEMENT_ERROR(trans, STREAM, FORMAT, ("Avatar frame out of range"),
                      ("frame %" G_GINT64_FORMAT ", the avatar %s has %zu", meta->avatar_frame,
                       st.avatar->path.c_str(), st.avatar->size()));
    return GST_FLOW_ERROR;
  }
  st.frame_index = meta->avatar_frame;
  // A speaking frame without a face was skipped upstream (inference could
  // not keep up): the last generated face is held.
  st.fresh_face = meta->speaking && meta->generated;
  // Cross-fade: the face's weight moves by one frame's share of transition-ms.
  int step = 255;
  if (st.active.transition_ms > 0 && GST_BUFFER_DURATION_IS_VALID(inbuf))
    step = std::max<int>(1, int(gst_util_uint64_scale(255, GST_BUFFER_DURATION(inbuf),
                                                      st.active.transition_ms * GST_MSECOND)));
  st.level = meta->speaking ? std::min(255, st.level + step) : std::max(0, st.level - step);
  if (!meta->speaking && st.level == 0) st.last_face.release();
  st.blend_pending = st.level > 0 && (st.fresh_face || !st.last_face.empty());
  choose_clip_images(st, GST_BUFFER_PTS(inbuf), step);

  // One picture as it is (no copy), or a composition transform() writes.
  const cv::Mat *whole = nullptr;
  if (st.clip_level == 255)
    whole = st.clip_image;  // a clip hides everything else
  else if (st.clip_level == 0 && st.idle_image && st.level == 0)
    whole = st.idle_image;
  else if (st.clip_level == 0 && !st.idle_image && !st.blend_pending)
    whole = &st.avatar->frames[size_t(st.frame_index)];
  const gsize size = GST_VIDEO_INFO_SIZE(&st.out_info);
  const bool plain_stride = GST_VIDEO_INFO_PLANE_STRIDE(&st.out_info, 0) == st.avatar->width * 3;
  if (whole && plain_stride && whole->isContinuous()) {
    // The shared avatar (or clip) frame itself, read-only, no copy.
    *outbuf = gst_buffer_new_wrapped_full(GST_MEMORY_FLAG_READONLY, whole->data, size, 0, size,
                                          new std::shared_ptr<const AvatarFrames>(st.avatar),
                                          free_avatar_ref);
    st.blend_pending = false;
  } else {
    *outbuf = gst_buffer_new_allocate(nullptr, size, nullptr);
    st.blend_pending = true;  // transform() writes it
  }
  gst_buffer_copy_into(
      *outbuf, inbuf,
      GstBufferCopyFlags(GST_BUFFER_COPY_TIMESTAMPS | GST_BUFFER_COPY_FLAGS | GST_BUFFER_COPY_META),
      0, -1);
  GST_BUFFER_FLAG_UNSET(*outbuf, GST_BUFFER_FLAG_GAP);  // an avatar frame is a real picture
  return GST_FLOW_OK;
}

static GstFlowReturn face_blend_transform(GstBaseTransform *trans, GstBuffer *inbuf,
                                          GstBuffer *outbuf) {
  auto &st = state_of(trans);
  // A new face is kept even under a clip: the frames after it show it.
  if (st.fresh_face) {
    GstVideoFrame in;
    if (!gst_video_frame_map(&in, &st.in_info, inbuf, GST_MAP_READ)) return GST_FLOW_ERROR;
    cv::Mat face(GST_VIDEO_FRAME_HEIGHT(&in), GST_VIDEO_FRAME_WIDTH(&in), CV_8UC3,
                 GST_VIDEO_FRAME_PLANE_DATA(&in, 0), GST_VIDEO_FRAME_PLANE_STRIDE(&in, 0));
    face.copyTo(st.last_face);
    gst_video_frame_unmap(&in);
  }
  if (!st.blend_pending) return GST_FLOW_OK;
  const size_t i = size_t(st.frame_index);
  const cv::Mat &frame = st.avatar->frames[i];
  GstVideoFrame out;
  if (!gst_video_frame_map(&out, &st.out_info, outbuf, GST_MAP_WRITE)) return GST_FLOW_ERROR;
  cv::Mat dst(frame.rows, frame.cols, CV_8UC3, GST_VIDEO_FRAME_PLANE_DATA(&out, 0),
              GST_VIDEO_FRAME_PLANE_STRIDE(&out, 0));
  frame.copyTo(dst);
  if (st.level > 0 && !st.last_face.empty()) {
    const auto &box = st.avatar->faces[i];
    talker::blend::paste_face(dst, talker::blend::resize_face(st.last_face, box), box,
                              st.avatar->masks[i], st.avatar->crops[i], st.level);
  }
  // The speaking avatar over the idle clip, by the face's weight.
  if (st.idle_image && st.level < 255)
    cv::addWeighted(dst, st.level / 255.0, *st.idle_image, 1 - st.level / 255.0, 0, dst);
  // A clip over everything, fading out after its end.
  if (st.clip_image && st.clip_level > 0)
    cv::addWeighted(dst, 1 - st.clip_level / 255.0, *st.clip_image, st.clip_level / 255.0, 0, dst);
  gst_video_frame_unmap(&out);
  return GST_FLOW_OK;
}

static void face_blend_set_property(GObject *object, guint id, const GValue *value,
                                    GParamSpec *pspec) {
  auto &st = *GST_FACE_BLEND(object)->state;
  std::lock_guard<std::mutex> l(st.settings_lock);
  switch (id) {
    case PROP_AVATAR:
      st.settings.avatar = g_value_get_string(value) ? g_value_get_string(value) : "";
      break;
    case PROP_TRANSITION_MS:
      st.settings.transition_ms = g_value_get_uint(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static void face_blend_get_property(GObject *object, guint id, GValue *value, GParamSpec *pspec) {
  auto &st = *GST_FACE_BLEND(object)->state;
  std::lock_guard<std::mutex> l(st.settings_lock);
  switch (id) {
    case PROP_AVATAR:
      g_value_set_string(value, st.settings.avatar.c_str());
      break;
    case PROP_TRANSITION_MS:
      g_value_set_uint(value, st.settings.transition_ms);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static void face_blend_finalize(GObject *object) {
  delete GST_FACE_BLEND(object)->state;
  G_OBJECT_CLASS(gst_face_blend_parent_class)->finalize(object);
}

static void gst_face_blend_class_init(GstFaceBlendClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);
  auto *trans_class = GST_BASE_TRANSFORM_CLASS(klass);
  gobject_class->set_property = face_blend_set_property;
  gobject_class->get_property = face_blend_get_property;
  gobject_class->finalize = face_blend_finalize;
  trans_class->start = face_blend_start;
  trans_class->stop = face_blend_stop;
  trans_class->transform_caps = face_blend_transform_caps;
  trans_class->set_caps = face_blend_set_caps;
  trans_class->prepare_output_buffer = face_blend_prepare_output_buffer;
  trans_class->transform = face_blend_transform;
  trans_class->sink_event = face_blend_sink_event;
  const auto flags =
      GParamFlags(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(
      gobject_class, PROP_AVATAR,
      g_param_spec_string("avatar", "Avatar",
                          "Avatar folder (frames/, masks/, boxes.json: docs/avatar.md); the same "
                          "one musetalklipsync uses",
                          "", flags));
  g_object_class_install_property(
      gobject_class, PROP_TRANSITION_MS,
      g_param_spec_uint(
          "transition-ms", "Transition (ms)",
          "Cross-fade between the avatar's own face and the generated "
          "one when speech starts and stops, in milliseconds; 0 switches at once, as MuseTalk does",
          0, 5000, 0,
          GParamFlags(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING)));
  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(element_class, "Face blend", "Filter/Effect/Video",
                                        "Pastes generated faces into the avatar's frames through "
                                        "feathered masks (MuseTalk's paste-back)",
                                        "gst-talker developers");
  GST_DEBUG_CATEGORY_INIT(faceblend_debug, "faceblend", 0, "face paste-back");
}

static void gst_face_blend_init(GstFaceBlend *self) {
  self->state = new FaceBlendState();
}
