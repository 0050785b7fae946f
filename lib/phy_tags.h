/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_SEMCOM_PHY_TAGS_H
#define INCLUDED_SEMCOM_PHY_TAGS_H

#include <pmt/pmt.h>

namespace gr {
namespace semcom {
namespace phy {

// The tags phy_sync_tagger_cc puts on a frame's first sample (phy_rx.py's CFO_TAG and
// TRIGGER_TAG): one definition for the tagger and the blocks that read them.
inline const pmt::pmt_t& cfo_tag()
{
    static const pmt::pmt_t key = pmt::mp("phy_cfo");
    return key;
}

inline const pmt::pmt_t& trigger_tag()
{
    static const pmt::pmt_t key = pmt::mp("phy_trigger");
    return key;
}

} // namespace phy
} // namespace semcom
} // namespace gr

#endif /* INCLUDED_SEMCOM_PHY_TAGS_H */
