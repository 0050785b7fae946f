/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_SEMCOM_PHY_FRAME_DEMUX_CVC_IMPL_H
#define INCLUDED_SEMCOM_PHY_FRAME_DEMUX_CVC_IMPL_H

#include "phy_ofdm.h"
#include <gnuradio/semcom/phy_frame_demux_cvc.h>
#include <atomic>

namespace gr {
namespace semcom {

class phy_frame_demux_cvc_impl : public phy_frame_demux_cvc
{
private:
    enum class state { find_trigger, header, payload };
    phy::receiver d_rx;
    state d_state = state::find_trigger;
    int d_remaining = 0;      // payload symbols still to hand on
    pmt::pmt_t d_answer = pmt::PMT_NIL; // the header's dict, tagged on the payload's first symbol
    const bool d_fine_timing;
    const int d_margin;       // samples kept either side of a trigger for the fine timing
    uint64_t d_trigger = 0;   // the trigger being decoded (absolute sample)
    uint64_t d_search_from = 0; // the next trigger is looked for from here (absolute)
    double d_cfo = 0.0;       // the sync's offset at d_trigger
    std::vector<phy::cfloat> d_rows;
    std::vector<gr::tag_t> d_tags;
    std::atomic<uint64_t> d_frames{ 0 }, d_crc_failures{ 0 }, d_errors{ 0 }, d_missing_cfo{ 0 };

    bool read_cfo(uint64_t trigger);
    bool decode_header(const gr_complex* in, int shift);

public:
    phy_frame_demux_cvc_impl(int cp_len, int smooth_taps, bool fine_timing);

    uint64_t frames() const override { return d_frames; }
    uint64_t crc_failures() const override { return d_crc_failures; }
    uint64_t errors() const override { return d_errors; }
    uint64_t missing_cfo() const override { return d_missing_cfo; }

    void forecast(int noutput_items, gr_vector_int& ninput_items_required) override;
    int general_work(int noutput_items,
                     gr_vector_int& ninput_items,
                     gr_vector_const_void_star& input_items,
                     gr_vector_void_star& output_items) override;
};

} // namespace semcom
} // namespace gr

#endif /* INCLUDED_SEMCOM_PHY_FRAME_DEMUX_CVC_IMPL_H */
