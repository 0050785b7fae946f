/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_SEMCOM_MMSE_EQUALIZER_CC_IMPL_H
#define INCLUDED_SEMCOM_MMSE_EQUALIZER_CC_IMPL_H

#include <gnuradio/semcom/mmse_equalizer_cc.h>

namespace gr {
namespace semcom {

class mmse_equalizer_cc_impl : public mmse_equalizer_cc
{
private:
    double d_signal_power;
    double d_noise_var;

    void update(double signal_power, double noise_var);
    void handle_cmd(const pmt::pmt_t& msg);

public:
    mmse_equalizer_cc_impl(double signal_power, double noise_var);
    ~mmse_equalizer_cc_impl() override;

    void set_signal_power(double signal_power) override;
    double signal_power() const override { return d_signal_power; }
    void set_noise_var(double noise_var) override;
    double noise_var() const override { return d_noise_var; }

    int work(int noutput_items,
             gr_vector_const_void_star& input_items,
             gr_vector_void_star& output_items) override;
};

} // namespace semcom
} // namespace gr

#endif /* INCLUDED_SEMCOM_MMSE_EQUALIZER_CC_IMPL_H */
