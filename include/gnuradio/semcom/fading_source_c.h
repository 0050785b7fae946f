/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_SEMCOM_FADING_SOURCE_C_H
#define INCLUDED_SEMCOM_FADING_SOURCE_C_H

#include <gnuradio/semcom/api.h>
#include <gnuradio/sync_block.h>
#include <cstdint>
#include <string>

namespace gr {
namespace semcom {

/*!
 * \brief Stream of a user's flat-fading coefficients h, drawn ahead of the channel.
 * \ingroup semcom
 *
 * \details
 * The same statistics as the h of fading_interference_channel_cc: AWGN: h = 1.
 * Rayleigh: h ~ CN(0, 1), held for \p coherence_len consecutive samples counted
 * from the stream start (1 = i.i.d. per sample). Connect it to the channel's
 * optional input 2 and to a precoder: both get h_i for symbol i (genie CSIT, the
 * transmitter knows the current block's fading; a real system would see it after
 * a feedback delay).
 *
 * The random stream is derived from \p seed with a different seed sequence than the
 * channel's, so a source and a channel given the same seed draw independent values.
 */
class SEMCOM_API fading_source_c : virtual public gr::sync_block
{
public:
    typedef std::shared_ptr<fading_source_c> sptr;

    /*!
     * \param channel_type "awgn" or "rayleigh".
     * \param coherence_len samples per fading block (>= 1; 1 = i.i.d.).
     * \param seed seed of the source's random generator.
     */
    static sptr make(const std::string& channel_type, int coherence_len, uint64_t seed);
};

} // namespace semcom
} // namespace gr

#endif /* INCLUDED_SEMCOM_FADING_SOURCE_C_H */
