// SPDX-License-Identifier: LGPL-2.1-or-later
// The talker output plugin: registers the streaming outputs, nothing else. A
// plugin of its own so that it loads without libtorch.
#include <gst/gst.h>

#include "gst/talkerrtmpsink/gsttalkerrtmpsink.h"
#include "gst/talkerwhipsink/gsttalkerwhipsink.h"

static gboolean plugin_init(GstPlugin *plugin) {
  gboolean ok = TRUE;
  ok &= GST_ELEMENT_REGISTER(talkerrtmpsink, plugin);
  ok &= GST_ELEMENT_REGISTER(talkerwhipsink, plugin);
  return ok;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, talkerout,
                  "Streaming outputs that reconnect: WHIP (WebRTC) and RTMP", plugin_init,
                  PACKAGE_VERSION, GST_LICENSE, GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
