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


 static const char *__doc_gr_semcom_phy_deframer_vc = R"doc()doc";


 static const char *__doc_gr_semcom_phy_deframer_vc_phy_deframer_vc_0 = R"doc()doc";


 static const char *__doc_gr_semcom_phy_deframer_vc_phy_deframer_vc_1 = R"doc()doc";


 static const char *__doc_gr_semcom_phy_deframer_vc_make = R"doc()doc";


 static const char *__doc_gr_semcom_phy_deframer_vc_frames = R"doc()doc";


 static const char *__doc_gr_semcom_phy_deframer_vc_errors = R"doc()doc";


 static const char *__doc_gr_semcom_phy_deframer_vc_lost = R"doc()doc";


 static const char *__doc_gr_semcom_phy_deframer_vc_resyncs = R"doc()doc";


 static const char *__doc_gr_semcom_phy_deframer_vc_estimates = R"doc()doc";

