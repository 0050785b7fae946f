/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_SEMCOM_PHY_HEADER_DECODER_VC_H
#define INCLUDED_SEMCOM_PHY_HEADER_DECODER_VC_H

#include <gnuradio/semcom/api.h>
#include <gnuradio/sync_block.h>

namespace gr {
namespace semcom {

/*!
 * \brief phy_rx's header decoder: the frame's first 7 OFDM symbols (S&C, LTS, LTS, 4 header
 * symbols; cyclic prefixes removed, vectors of 64) -> one message on "header_data" per frame.
 * \ingroup semcom
 *
 * \details
 * The same maths as the numpy reference (python/semcom/phy/estimate.py): the frequency
 * offset (the "phy_cfo" tag on the frame's first symbol, refined by the training pair's
 * rotation) removed, FFT, h and sigma^2 from the training pair (h smoothed onto the
 * smooth_taps strongest consecutive delays; 0 = off), the coded header (soft Viterbi, CRC).
 * The answer is a dict for header_payload_demux: "frame_len" (payload symbols), "image_id",
 * "seq", "scheme_id", "k", "phy_noise_var", "phy_error_var", "cfo_rotation", "cfo", "phy_h"
 * (c32vector, natural order); or PMT_F when the header fails (counted in crc_failures,
 * logged once) or the block fails on the frame (counted in errors, logged).
 */
class SEMCOM_API phy_header_decoder_vc : virtual public gr::sync_block
{
public:
    typedef std::shared_ptr<phy_header_decoder_vc> sptr;

    /*!
     * \param cp_len cyclic prefix (1..63).
     * \param smooth_taps delay-domain smoothing of h (0 = off, up to 51).
     */
    static sptr make(int cp_len, int smooth_taps);

    virtual uint64_t frames() const = 0;       //!< headers that passed
    virtual uint64_t crc_failures() const = 0; //!< headers rejected (CRC, version, padding)
    virtual uint64_t errors() const = 0;       //!< frames this block failed on
    virtual uint64_t missing_cfo() const = 0;  //!< headers without their "phy_cfo" tag
};

} // namespace semcom
} // namespace gr

#endif /* INCLUDED_SEMCOM_PHY_HEADER_DECODER_VC_H */
