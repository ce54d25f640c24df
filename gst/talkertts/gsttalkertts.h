// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <gst/base/gstpushsrc.h>

G_BEGIN_DECLS

#define GST_TYPE_TALKER_TTS (gst_talker_tts_get_type())
G_DECLARE_FINAL_TYPE(GstTalkerTts, gst_talker_tts, GST, TALKER_TTS, GstPushSrc)
GST_ELEMENT_REGISTER_DECLARE(talkertts);

G_END_DECLS
