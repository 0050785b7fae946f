/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_SEMCOM_FADING_INTERFERENCE_CHANNEL_CC_IMPL_H
#define INCLUDED_SEMCOM_FADING_INTERFERENCE_CHANNEL_CC_IMPL_H

#include <gnuradio/semcom/fading_interference_channel_cc.h>
#include <random>

namespace gr {
namespace semcom {

class fading_interference_channel_cc_impl : public fading_interference_channel_cc
{
private:
    const bool d_rayleigh;
    const int d_coherence_len;
    const double d_signal_power;
    double d_snr_db;
    double d_sinr_db;       // in use: min(asked, SNR) at run time
    double d_asked_sinr_db; // as last set: comes back when the SNR rises above it
    bool d_clamped = false; // d_sinr_db < d_asked_sinr_db (logged once per change)
    // Derived amplitudes, recomputed under d_setlock whenever SNR/SINR change.
    float d_sig_amp;   // sqrt(Ps)
    float d_int_amp;   // sqrt(Pi)
    float d_noise_amp; // sqrt(sigma^2 / 2), per real dimension
    double d_noise_var;
    double d_int_power;

    std::mt19937_64 d_rng;
    std::normal_distribution<float> d_normal;
    gr_complex d_h; // current fading coefficients (held for a coherence block)
    gr_complex d_g;
    uint64_t d_block_pos; // symbols already sent in the current coherence block

    void update_powers(double snr_db, double sinr_db, bool at_run_time);
    void handle_cmd(const pmt::pmt_t& msg);

public:
    fading_interference_channel_cc_impl(const std::string& channel_type,
                                        int coherence_len,
                                        double snr_db,
                                        double sinr_db,
                                        double signal_power,
                                        uint64_t seed);
    ~fading_interference_channel_cc_impl() override;

    void set_snr_db(double snr_db) override;
    double snr_db() const override { return d_snr_db; }
    void set_sinr_db(double sinr_db) override;
    double sinr_db() const override { return d_sinr_db; }
    double noise_var() const override { return d_noise_var; }
    double interference_power() const override { return d_int_power; }

    int work(int noutput_items,
             gr_vector_const_void_star& input_items,
             gr_vector_void_star& output_items) override;
};

} // namespace semcom
} // namespace gr

#endif /* INCLUDED_SEMCOM_FADING_INTERFERENCE_CHANNEL_CC_IMPL_H */
