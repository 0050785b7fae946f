/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_SEMCOM_PHY_SYNC_TAGGER_CC_IMPL_H
#define INCLUDED_SEMCOM_PHY_SYNC_TAGGER_CC_IMPL_H

#include <gnuradio/semcom/phy_sync_tagger_cc.h>
#include <atomic>

namespace gr {
namespace semcom {

class phy_sync_tagger_cc_impl : public phy_sync_tagger_cc
{
private:
    std::atomic<uint64_t> d_triggers{ 0 };
    std::vector<gr::tag_t> d_tags;

public:
    phy_sync_tagger_cc_impl();

    uint64_t triggers() const override { return d_triggers; }

    int work(int noutput_items,
             gr_vector_const_void_star& input_items,
             gr_vector_void_star& output_items) override;
};

} // namespace semcom
} // namespace gr

#endif /* INCLUDED_SEMCOM_PHY_SYNC_TAGGER_CC_IMPL_H */
