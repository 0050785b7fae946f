/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_SEMCOM_MMSE_EQUALIZER_CC_H
#define INCLUDED_SEMCOM_MMSE_EQUALIZER_CC_H

#include <gnuradio/semcom/api.h>
#include <gnuradio/sync_block.h>

namespace gr {
namespace semcom {

/*!
 * \brief Per-symbol MMSE equalizer with known CSI.
 * \ingroup semcom
 *
 * \details
 * w_i = sqrt(Ps) conj(h_i) / (Ps |h_i|^2 + sigma^2),  zhat_i = w_i y_i.
 *
 * Input 0 is the received y, input 1 the CSI h. Output 0 is zhat, output 1 (optional) the
 * weight w that the diffusion receivers need for the real-valued model
 * xhat = A x + B i + C e. Tags on y go to zhat, tags on h go to w.
 * Ps and sigma^2 can be changed at run time with the setters or a message on
 * port "cmd": a dict (or a pair) with keys "signal_power" and/or "noise_var".
 */
class SEMCOM_API mmse_equalizer_cc : virtual public gr::sync_block
{
public:
    typedef std::shared_ptr<mmse_equalizer_cc> sptr;

    /*!
     * \param signal_power Ps (> 0).
     * \param noise_var sigma^2 (>= 0).
     */
    static sptr make(double signal_power, double noise_var);

    virtual void set_signal_power(double signal_power) = 0;
    virtual double signal_power() const = 0;
    virtual void set_noise_var(double noise_var) = 0;
    virtual double noise_var() const = 0;
};

} // namespace semcom
} // namespace gr

#endif /* INCLUDED_SEMCOM_MMSE_EQUALIZER_CC_H */
