// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <gst/gst.h>

#include <string>

#include "gst/common/gst_ptr.h"

namespace talker::test {

// Message and debug text of an ERROR message.
inline std::string error_text(GstMessage *msg) {
  GError *err = nullptr;
  gchar *debug = nullptr;
  gst_message_parse_error(msg, &err, &debug);
  std::string text = std::string(err->message) + " " + (debug ? debug : "");
  g_error_free(err);
  g_free(debug);
  return text;
}

// Message and debug text of the first ERROR on the pipeline's bus, waiting up
// to `timeout`; empty when there is none.
inline std::string first_error(GstElement *pipeline, GstClockTime timeout = 0) {
  gst::GstPtr<GstBus> bus(gst_element_get_bus(pipeline));
  gst::GstPtr<GstMessage> msg(gst_bus_timed_pop_filtered(bus.get(), timeout, GST_MESSAGE_ERROR));
  return msg ? error_text(msg.get()) : "";
}

}  // namespace talker::test
