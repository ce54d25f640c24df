// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_WHISPER_FEAT (gst_whisper_feat_get_type())
G_DECLARE_FINAL_TYPE(GstWhisperFeat, gst_whisper_feat, GST, WHISPER_FEAT, GstElement)
GST_ELEMENT_REGISTER_DECLARE(whisperfeat);

G_END_DECLS
