/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "phy_sync_tagger_cc_impl.h"
#include "phy_tags.h"
#include <gnuradio/io_signature.h>
#include <cstring>

namespace gr {
namespace semcom {

phy_sync_tagger_cc::sptr phy_sync_tagger_cc::make()
{
    return gnuradio::make_block_sptr<phy_sync_tagger_cc_impl>();
}

phy_sync_tagger_cc_impl::phy_sync_tagger_cc_impl()
    : gr::sync_block("phy_sync_tagger_cc",
                     gr::io_signature::make3(3, 3, sizeof(gr_complex), sizeof(float), sizeof(char)),
                     gr::io_signature::make(1, 1, sizeof(gr_complex)))
{
    // only the samples' own tags pass (in work), not the sync's
    set_tag_propagation_policy(TPP_DONT);
}

int phy_sync_tagger_cc_impl::work(int noutput_items,
                                  gr_vector_const_void_star& input_items,
                                  gr_vector_void_star& output_items)
{
    const auto* offset = static_cast<const float*>(input_items[1]);
    const auto* trigger = static_cast<const char*>(input_items[2]);
    std::memcpy(output_items[0], input_items[0], noutput_items * sizeof(gr_complex));
    get_tags_in_window(d_tags, 0, 0, noutput_items);
    for (const auto& tag : d_tags)
        add_item_tag(0, tag);
    const uint64_t start = nitems_written(0);
    for (int i = 0; i < noutput_items; i++)
        if (trigger[i]) {
            add_item_tag(0, start + i, phy::cfo_tag(), pmt::from_double(offset[i]));
            add_item_tag(0, start + i, phy::trigger_tag(), pmt::PMT_T);
            d_triggers++;
        }
    return noutput_items;
}

} /* namespace semcom */
} /* namespace gr */
