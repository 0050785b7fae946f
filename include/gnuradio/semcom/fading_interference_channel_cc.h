/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_SEMCOM_FADING_INTERFERENCE_CHANNEL_CC_H
#define INCLUDED_SEMCOM_FADING_INTERFERENCE_CHANNEL_CC_H

#include <gnuradio/semcom/api.h>
#include <gnuradio/sync_block.h>
#include <cstdint>
#include <string>

namespace gr {
namespace semcom {

/*!
 * \brief Flat-fading channel with a second (interfering) user and AWGN.
 * \ingroup semcom
 *
 * \details
 * y_i = sqrt(Ps) h_i z_i + sqrt(Pi) g_i u_i + n_i,  n_i ~ CN(0, sigma^2).
 *
 * Input 0 is the user's unit-power symbol stream z, input 1 the interferer's u.
 * Output 0 is y, output 1 the channel state h (what a genie-CSI receiver knows;
 * g and u are never output). AWGN: h = g = 1. Rayleigh: h, g ~ CN(0, 1), held
 * for \p coherence_len consecutive symbols counted from the stream start
 * (1 = i.i.d. per symbol).
 *
 * Optional input 2: the user's fading h from outside (e.g. fading_source_c, whose
 * stream also feeds a precoder: both see h_i for symbol i). When it is connected,
 * sample i of it is the h applied to z_i and output on port 1; g and n are still
 * drawn inside, and the block's own draws are the same sequence as without it (its
 * own h is drawn and discarded), so g and n do not depend on whether h comes from
 * outside. Tags on input 2 are dropped. SNR = Ps / sigma^2, SINR = Ps / (Pi + sigma^2), both
 * in dB; SINR = +inf means no interferer, SNR = +inf means no noise.
 *
 * Stream tags on input 0 are copied to both outputs; tags on the interferer
 * input are dropped (its framing is not the receiver's). SNR and SINR can be
 * changed at run time with the setters or a message on port "cmd": a dict (or
 * a pair) with keys "snr_db" and/or "sinr_db".
 */
class SEMCOM_API fading_interference_channel_cc : virtual public gr::sync_block
{
public:
    typedef std::shared_ptr<fading_interference_channel_cc> sptr;

    /*!
     * \param channel_type "awgn" or "rayleigh".
     * \param coherence_len symbols per fading block (>= 1; 1 = i.i.d.).
     * \param snr_db Ps / sigma^2 in dB (may be +inf).
     * \param sinr_db Ps / (Pi + sigma^2) in dB, <= snr_db (+inf: no interferer).
     * \param signal_power Ps (> 0); the interferer power Pi follows from SNR and SINR.
     * \param seed seed of the channel's random generator.
     */
    static sptr make(const std::string& channel_type,
                     int coherence_len,
                     double snr_db,
                     double sinr_db,
                     double signal_power,
                     uint64_t seed);

    virtual void set_snr_db(double snr_db) = 0;
    virtual double snr_db() const = 0;
    virtual void set_sinr_db(double sinr_db) = 0;
    virtual double sinr_db() const = 0;
    //! sigma^2 derived from the current SNR.
    virtual double noise_var() const = 0;
    //! Pi derived from the current SNR and SINR.
    virtual double interference_power() const = 0;
};

} // namespace semcom
} // namespace gr

#endif /* INCLUDED_SEMCOM_FADING_INTERFERENCE_CHANNEL_CC_H */
