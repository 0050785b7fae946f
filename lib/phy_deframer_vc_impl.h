/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_SEMCOM_PHY_DEFRAMER_VC_IMPL_H
#define INCLUDED_SEMCOM_PHY_DEFRAMER_VC_IMPL_H

#include "phy_ofdm.h"
#include <gnuradio/semcom/phy_deframer_vc.h>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>

namespace gr {
namespace semcom {

class phy_deframer_vc_impl : public phy_deframer_vc
{
private:
    phy::receiver d_rx;
    bool d_linear;
    int d_max_gap;
    std::map<std::string, pmt::pmt_t> d_frame_tags; // the current frame's (empty: none)
    int d_need = 0, d_have = 0;
    std::vector<phy::cfloat> d_rows;
    std::vector<phy::cdouble> d_spectra;
    std::vector<gr::tag_t> d_tags;
    int d_last_seq = -1;
    std::atomic<uint64_t> d_frames{ 0 }, d_errors{ 0 }, d_lost{ 0 }, d_resyncs{ 0 };
    mutable std::mutex d_estimates_lock;
    std::deque<std::pair<double, double>> d_estimates;

    void deliver_frame();
    void count_gap(int seq);
    const pmt::pmt_t& tag(const char* key) const;

public:
    phy_deframer_vc_impl(int cp_len, const std::string& tracking, int max_gap);

    uint64_t frames() const override { return d_frames; }
    uint64_t errors() const override { return d_errors; }
    uint64_t lost() const override { return d_lost; }
    uint64_t resyncs() const override { return d_resyncs; }
    std::vector<std::pair<double, double>> estimates() const override;

    int work(int noutput_items,
             gr_vector_const_void_star& input_items,
             gr_vector_void_star& output_items) override;
};

} // namespace semcom
} // namespace gr

#endif /* INCLUDED_SEMCOM_PHY_DEFRAMER_VC_IMPL_H */
