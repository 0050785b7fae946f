/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_SEMCOM_PHY_DEFRAMER_VC_H
#define INCLUDED_SEMCOM_PHY_DEFRAMER_VC_H

#include <gnuradio/semcom/api.h>
#include <gnuradio/sync_block.h>
#include <string>
#include <utility>
#include <vector>

namespace gr {
namespace semcom {

/*!
 * \brief phy_rx's payload stage: the payload's OFDM symbols (cyclic prefixes removed,
 * vectors of 64), the header decoder's estimates as tags on the first -> one PDU per frame.
 * \ingroup semcom
 *
 * \details
 * The same maths as the numpy reference (payload_estimate in python/semcom/phy/estimate.py):
 * the frequency offset removed, FFT, pilot phase tracking ("linear" over the frame or
 * "per-symbol"), the interleaver and PN signs undone, SNR and SINR. Message ports:
 * "pdus": (meta, c32 zhat = w y), y in the unit-signal-power domain, w = conj(h) / (|h|^2 + sigma^2);
 * meta "image_id", "seq", "scheme_id", "k", "snr_db", "sinr_db", "noise_var",
 * "interference_power", "cfo", "cfo_rotation", "csi" = estimated, "w", "h".
 * "payload" (c32 y), "channel" (f32 |h| over the 64 carriers, DC in the middle, unit mean
 * power), "estimates" (f32 [snr_db, sinr_db]): one PDU per frame each, meta "image_id".
 * "lost": one PMT_T per frame missing from the sequence numbers (a jump of at most
 * max_gap; a larger one is a new transmission, counted in resyncs).
 */
class SEMCOM_API phy_deframer_vc : virtual public gr::sync_block
{
public:
    typedef std::shared_ptr<phy_deframer_vc> sptr;

    /*!
     * \param cp_len cyclic prefix (1..63).
     * \param tracking "linear" or "per-symbol".
     * \param max_gap the largest jump in sequence numbers counted as lost frames.
     */
    static sptr make(int cp_len, const std::string& tracking, int max_gap = 64);

    virtual uint64_t frames() const = 0;  //!< PDUs delivered
    virtual uint64_t errors() const = 0;  //!< frames this block failed on (logged)
    virtual uint64_t lost() const = 0;    //!< frames known lost (gaps in the sequence numbers)
    virtual uint64_t resyncs() const = 0; //!< jumps larger than max_gap
    /*! (snr_db, sinr_db) of the last 100000 frames delivered. */
    virtual std::vector<std::pair<double, double>> estimates() const = 0;
};

} // namespace semcom
} // namespace gr

#endif /* INCLUDED_SEMCOM_PHY_DEFRAMER_VC_H */
