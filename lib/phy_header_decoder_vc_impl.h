/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_SEMCOM_PHY_HEADER_DECODER_VC_IMPL_H
#define INCLUDED_SEMCOM_PHY_HEADER_DECODER_VC_IMPL_H

#include "phy_ofdm.h"
#include <gnuradio/semcom/phy_header_decoder_vc.h>
#include <atomic>

namespace gr {
namespace semcom {

/*! The header stage's answer for one frame: rows are its first HEADER_LEN symbols without
 *  prefixes, sync_cfo the sync's offset at its trigger -> the dict for the payload stage
 *  (see phy_header_decoder_vc.h), or PMT_F and why the header failed. */
pmt::pmt_t phy_header_answer(phy::receiver& rx, const phy::cfloat* rows, double sync_cfo, std::string& why);

class phy_header_decoder_vc_impl : public phy_header_decoder_vc
{
private:
    phy::receiver d_rx;
    std::vector<phy::cfloat> d_rows; // the current frame's symbols so far
    int d_have = 0;
    double d_cfo = 0.0;
    std::string d_cfo_error; // why the current frame's offset tag could not be read
    std::vector<gr::tag_t> d_tags;
    std::atomic<uint64_t> d_frames{ 0 }, d_crc_failures{ 0 }, d_errors{ 0 }, d_missing_cfo{ 0 };

    pmt::pmt_t decode_frame();

public:
    phy_header_decoder_vc_impl(int cp_len, int smooth_taps);

    uint64_t frames() const override { return d_frames; }
    uint64_t crc_failures() const override { return d_crc_failures; }
    uint64_t errors() const override { return d_errors; }
    uint64_t missing_cfo() const override { return d_missing_cfo; }

    int work(int noutput_items,
             gr_vector_const_void_star& input_items,
             gr_vector_void_star& output_items) override;
};

} // namespace semcom
} // namespace gr

#endif /* INCLUDED_SEMCOM_PHY_HEADER_DECODER_VC_IMPL_H */
