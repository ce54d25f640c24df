// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_MUSETALK_LIPSYNC (gst_musetalk_lipsync_get_type())
G_DECLARE_FINAL_TYPE(GstMuseTalkLipSync, gst_musetalk_lipsync, GST, MUSETALK_LIPSYNC, GstElement)
GST_ELEMENT_REGISTER_DECLARE(musetalklipsync);

G_END_DECLS
