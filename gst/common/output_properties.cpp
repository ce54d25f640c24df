// SPDX-License-Identifier: LGPL-2.1-or-later
#include "gst/common/output_properties.h"

namespace talker::gst {
namespace {
enum { kVideoBitrate, kKeyframeInterval, kAudioBitrate, kRetryDelay, kMaxRetryDelay, kMaxRetries };
constexpr auto kFlags =
    GParamFlags(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
}  // namespace

void install_output_properties(GObjectClass *klass, guint first_id, guint default_audio_bitrate) {
  g_object_class_install_property(
      klass, first_id + kVideoBitrate,
      g_param_spec_uint("video-bitrate", "Video bitrate",
                        "H.264 bitrate in kbit/s when the bin encodes raw video", 100, 50000, 2000,
                        kFlags));
  g_object_class_install_property(
      klass, first_id + kKeyframeInterval,
      g_param_spec_uint("keyframe-interval", "Key-frame interval",
                        "Milliseconds between H.264 key frames when the bin encodes (SPS/PPS go "
                        "with each); a (re)connected viewer waits at most this long for a picture",
                        200, 10000, 2000, kFlags));
  g_object_class_install_property(
      klass, first_id + kAudioBitrate,
      g_param_spec_uint("audio-bitrate", "Audio bitrate",
                        "Audio bitrate in bit/s when the bin encodes raw audio", 16000, 320000,
                        default_audio_bitrate, kFlags));
  g_object_class_install_property(
      klass, first_id + kRetryDelay,
      g_param_spec_uint("retry-delay", "Retry delay",
                        "Milliseconds before the first reconnection attempt; each further attempt "
                        "doubles it (up to max-retry-delay), each drawn at random from half to "
                        "all of that so that many clients do not return in step",
                        10, 600000, 1000, kFlags));
  g_object_class_install_property(
      klass, first_id + kMaxRetryDelay,
      g_param_spec_uint("max-retry-delay", "Maximum retry delay",
                        "Upper bound in milliseconds of the back-off between attempts (a "
                        "server's Retry-After may ask for longer)",
                        10, 3600000, 30000, kFlags));
  g_object_class_install_property(
      klass, first_id + kMaxRetries,
      g_param_spec_int("max-retries", "Maximum retries",
                       "Consecutive failed attempts before the element gives up with a bus error "
                       "(-1: never give up). A session that connected resets the count",
                       -1, G_MAXINT, -1, kFlags));
}

bool set_output_property(ReconnectingOutput &out, guint id, guint first_id, const GValue *value) {
  if (id < first_id || id >= first_id + kOutputPropertyCount) return false;
  switch (id - first_id) {
    case kVideoBitrate:
      out.encoder.video_bitrate_kbps = g_value_get_uint(value);
      break;
    case kKeyframeInterval:
      out.encoder.keyframe_interval_ms = g_value_get_uint(value);
      break;
    case kAudioBitrate:
      out.encoder.audio_bitrate_bps = g_value_get_uint(value);
      break;
    case kRetryDelay:
      out.retry.first_delay_ms = g_value_get_uint(value);
      break;
    case kMaxRetryDelay:
      out.retry.max_delay_ms = g_value_get_uint(value);
      break;
    case kMaxRetries:
      out.retry.max_retries = g_value_get_int(value);
      break;
  }
  return true;
}

bool get_output_property(const ReconnectingOutput &out, guint id, guint first_id, GValue *value) {
  if (id < first_id || id >= first_id + kOutputPropertyCount) return false;
  switch (id - first_id) {
    case kVideoBitrate:
      g_value_set_uint(value, out.encoder.video_bitrate_kbps);
      break;
    case kKeyframeInterval:
      g_value_set_uint(value, out.encoder.keyframe_interval_ms);
      break;
    case kAudioBitrate:
      g_value_set_uint(value, out.encoder.audio_bitrate_bps);
      break;
    case kRetryDelay:
      g_value_set_uint(value, out.retry.first_delay_ms);
      break;
    case kMaxRetryDelay:
      g_value_set_uint(value, out.retry.max_delay_ms);
      break;
    case kMaxRetries:
      g_value_set_int(value, out.retry.max_retries);
      break;
  }
  return true;
}

}  // namespace talker::gst
