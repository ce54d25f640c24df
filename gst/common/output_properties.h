// SPDX-License-Identifier: LGPL-2.1-or-later
// Properties talkerrtmpsink and talkerwhipsink share: encoder and retry
// settings, installed under the same names with the same documentation.
#pragma once

#include <gst/gst.h>

#include "gst/common/reconnecting_output.h"

namespace talker::gst {

// Installs video-bitrate, keyframe-interval, audio-bitrate, retry-delay,
// max-retry-delay and max-retries with ids first_id.. first_id+5.
void install_output_properties(GObjectClass *klass, guint first_id, guint default_audio_bitrate);
// Set/get for those ids; false when `id` is not one of them.
bool set_output_property(ReconnectingOutput &out, guint id, guint first_id, const GValue *value);
bool get_output_property(const ReconnectingOutput &out, guint id, guint first_id, GValue *value);
constexpr guint kOutputPropertyCount = 6;

}  // namespace talker::gst
