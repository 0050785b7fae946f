/*
 * Copyright 2026 Free Software Foundation, Inc.
 *
 * This file is part of GNU Radio
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 */
#include "pydoc_macros.h"
#define D(...) DOC(gr, semcom, __VA_ARGS__)
/*
  This file contains placeholders for docstrings for the Python bindings.
  Do not edit! These were automatically extracted during the binding process
  and will be overwritten during the build process
 */


 static const char *__doc_gr_semcom_phy_frame_demux_cvc = R"doc()doc";


 static const char *__doc_gr_semcom_phy_frame_demux_cvc_phy_frame_demux_cvc_0 = R"doc()doc";


 static const char *__doc_gr_semcom_phy_frame_demux_cvc_phy_frame_demux_cvc_1 = R"doc()doc";


 static const char *__doc_gr_semcom_phy_frame_demux_cvc_make = R"doc()doc";


 static const char *__doc_gr_semcom_phy_frame_demux_cvc_frames = R"doc()doc";


 static const char *__doc_gr_semcom_phy_frame_demux_cvc_crc_failures = R"doc()doc";


 static const char *__doc_gr_semcom_phy_frame_demux_cvc_errors = R"doc()doc";


 static const char *__doc_gr_semcom_phy_frame_demux_cvc_missing_cfo = R"doc()doc";

