// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_TALKING_HEAD (gst_talking_head_get_type())
G_DECLARE_FINAL_TYPE(GstTalkingHead, gst_talking_head, GST, TALKING_HEAD, GstBin)
GST_ELEMENT_REGISTER_DECLARE(talkinghead);

G_END_DECLS
