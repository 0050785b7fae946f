/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_SEMCOM_PHY_FRAME_DEMUX_CVC_H
#define INCLUDED_SEMCOM_PHY_FRAME_DEMUX_CVC_H

#include <gnuradio/block.h>
#include <gnuradio/semcom/api.h>

namespace gr {
namespace semcom {

/*!
 * \brief phy_rx's frame demux: samples tagged by phy_sync_tagger_cc -> the payload's OFDM
 * symbols (cyclic prefixes removed, vectors of 64), the header's fields and estimates as tags
 * on the first.
 * \ingroup semcom
 *
 * \details
 * What stock header_payload_demux (symbol mode, prefixes removed) and phy_header_decoder_vc
 * do together, in one thread: at a "phy_trigger" tag, the frame's first 7 symbols are
 * decoded at once (the header stage's maths; the offset from the "phy_cfo" tag on the first
 * symbol) and, if the header passes, the payload's symbols follow with its answer as tags
 * ("frame_len", "image_id", "seq", "scheme_id", "k", "phy_noise_var", "phy_error_var",
 * "cfo_rotation", "cfo", "phy_h"); triggers inside a frame are ignored. A failed header
 * (counted in crc_failures, logged once) resumes the search one sample after its trigger,
 * as the stock demux does. The stock pair hands each header over by message and the demux
 * spins while it waits for the answer; on a busy machine that wait, not the maths, limited
 * the receiver.
 */
class SEMCOM_API phy_frame_demux_cvc : virtual public gr::block
{
public:
    typedef std::shared_ptr<phy_frame_demux_cvc> sptr;

    /*!
     * \param cp_len cyclic prefix (1..63).
     * \param smooth_taps delay-domain smoothing of h (0 = off, up to 51).
     * \param fine_timing place the frame by the training pair's correlation with the known
     *        symbol, searched 24 samples either side of the trigger, the windows 3 samples
     *        before its peak (phy/estimate.py's fine_timing); the shift is tagged
     *        "timing_shift". Off: the windows start where the trigger says (as the stock demux).
     */
    static sptr make(int cp_len, int smooth_taps, bool fine_timing = false);

    virtual uint64_t frames() const = 0;       //!< headers that passed
    virtual uint64_t crc_failures() const = 0; //!< headers rejected (CRC, version, padding)
    virtual uint64_t errors() const = 0;       //!< frames this block failed on
    virtual uint64_t missing_cfo() const = 0;  //!< headers without their "phy_cfo" tag
};

} // namespace semcom
} // namespace gr

#endif /* INCLUDED_SEMCOM_PHY_FRAME_DEMUX_CVC_H */
