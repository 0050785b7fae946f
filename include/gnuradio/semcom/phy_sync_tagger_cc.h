/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_SEMCOM_PHY_SYNC_TAGGER_CC_H
#define INCLUDED_SEMCOM_PHY_SYNC_TAGGER_CC_H

#include <gnuradio/semcom/api.h>
#include <gnuradio/sync_block.h>

namespace gr {
namespace semcom {

/*!
 * \brief phy_rx's frame marker: samples pass through; where ofdm_sync_sc_cfb triggers, the
 * sample gets a "phy_trigger" tag (for header_payload_demux, which consumes it) and a
 * "phy_cfo" tag (the sync's fine frequency offset at the trigger, a double).
 * \ingroup semcom
 *
 * \details
 * Input 0: the (delayed) samples, whose own tags pass on; input 1: the sync's fine offset
 * (float); input 2: its trigger (char, non-zero = a frame starts).
 */
class SEMCOM_API phy_sync_tagger_cc : virtual public gr::sync_block
{
public:
    typedef std::shared_ptr<phy_sync_tagger_cc> sptr;

    static sptr make();

    /*! Triggers tagged so far. */
    virtual uint64_t triggers() const = 0;
};

} // namespace semcom
} // namespace gr

#endif /* INCLUDED_SEMCOM_PHY_SYNC_TAGGER_CC_H */
