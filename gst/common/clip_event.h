// SPDX-License-Identifier: LGPL-2.1-or-later
// talker-clip: the custom downstream event talkertts sends just before the
// first buffer of an action clip's audio (say-clip). Serialized, it travels
// in order with the audio through whisperfeat and musetalklipsync, so
// faceblend learns where the clip starts before the frame of that time
// reaches it, and shows the clip's frames from that PTS on: sound and
// picture start together whatever the latency between them.
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define TALKER_CLIP_EVENT_NAME "talker-clip"

// `name`: the clip (actions/<name>/ of the avatar); `timestamp`: the PTS of
// its first sample (stream time of the talkertts pad); `duration`: how long
// its audio plays.
GstEvent *talker_clip_event_new(const gchar *name, GstClockTime timestamp, GstClockTime duration);
// FALSE when `event` is not a talker-clip event. `name` (transfer full) and
// the others may be NULL.
gboolean talker_clip_event_parse(GstEvent *event, gchar **name, GstClockTime *timestamp,
                                 GstClockTime *duration);

G_END_DECLS
