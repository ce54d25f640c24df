// SPDX-License-Identifier: LGPL-2.1-or-later
// A sentence starts or ends in this buffer: talkertts puts one on the first
// and one on the last buffer of each sentence it speaks, so a probe near the
// sink can act when the words are heard (subtitles, SSE events).
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

typedef enum {
  TALKER_SENTENCE_START = 0,
  TALKER_SENTENCE_END = 1,
} TalkerSentenceState;

typedef enum {
  TALKER_SENTENCE_FINISHED = 0,     // spoken to the end
  TALKER_SENTENCE_INTERRUPTED = 1,  // cut by the interrupt signal
  TALKER_SENTENCE_FAILED = 2,       // the engine failed part-way
} TalkerSentenceEndReason;

typedef struct {
  GstMeta meta;
  TalkerSentenceState state;
  guint64 id;         // the sentence, counted from 1 per element
  guint64 utterance;  // the say call or text stream it belongs to
  gchar *text;
  GstClockTime offset;  // from the buffer's PTS to the sentence's first sample (start) or its end
  TalkerSentenceEndReason reason;  // END only
} TalkerSentenceMeta;

GType talker_sentence_meta_api_get_type(void);
const GstMetaInfo *talker_sentence_meta_get_info(void);
#define TALKER_SENTENCE_META_API_TYPE (talker_sentence_meta_api_get_type())

TalkerSentenceMeta *talker_buffer_add_sentence_meta(GstBuffer *buffer, TalkerSentenceState state,
                                                    guint64 id, guint64 utterance,
                                                    const gchar *text, GstClockTime offset,
                                                    TalkerSentenceEndReason reason);

const gchar *talker_sentence_end_reason_name(TalkerSentenceEndReason reason);

G_END_DECLS
