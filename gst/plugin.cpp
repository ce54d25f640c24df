// SPDX-License-Identifier: LGPL-2.1-or-later
// The talker plugin: registers every element, nothing else.
#include <gst/gst.h>

#include "gst/faceblend/gstfaceblend.h"
#include "gst/musetalklipsync/gstmusetalklipsync.h"
#include "gst/talkertts/gsttalkertts.h"
#include "gst/talkinghead/gsttalkinghead.h"
#include "gst/whisperfeat/gstwhisperfeat.h"

static gboolean plugin_init(GstPlugin *plugin) {
  gboolean ok = TRUE;
  ok &= GST_ELEMENT_REGISTER(talkertts, plugin);
  ok &= GST_ELEMENT_REGISTER(whisperfeat, plugin);
  ok &= GST_ELEMENT_REGISTER(musetalklipsync, plugin);
  ok &= GST_ELEMENT_REGISTER(faceblend, plugin);
  ok &= GST_ELEMENT_REGISTER(talkinghead, plugin);
  return ok;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, talker,
                  "Text to lip-synced talking head: TTS, whisper features, MuseTalk, face blending",
                  plugin_init, PACKAGE_VERSION, GST_LICENSE, GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
