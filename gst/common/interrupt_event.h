// SPDX-License-Identifier: LGPL-2.1-or-later
// talker-interrupt: the custom downstream event talkertts sends when speech
// is interrupted. It is serialized: it travels in order with the audio, just
// before the first buffer of silence, so each element downstream knows that
// everything after it is silence until the next sentence and can drop or
// finish the work it holds for the interrupted speech.
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define TALKER_INTERRUPT_EVENT_NAME "talker-interrupt"

// `timestamp`: PTS (stream time of the talkertts pad) where the silence
// starts; `sentence`, `utterance`: the ids of the sentence cut off.
GstEvent *talker_interrupt_event_new(GstClockTime timestamp, guint64 sentence, guint64 utterance);
gboolean talker_event_is_interrupt(GstEvent *event);
// FALSE when `event` is not a talker-interrupt event. Any out-pointer may be NULL.
gboolean talker_interrupt_event_parse(GstEvent *event, GstClockTime *timestamp, guint64 *sentence,
                                      guint64 *utterance);

G_END_DECLS
