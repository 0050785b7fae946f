/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "mmse_equalizer_cc_impl.h"
#include <gnuradio/io_signature.h>
#include <cmath>
#include <stdexcept>
#include <string>

namespace gr {
namespace semcom {

namespace {
const pmt::pmt_t CMD_PORT = pmt::mp("cmd");
const pmt::pmt_t POWER_KEY = pmt::mp("signal_power");
const pmt::pmt_t NOISE_KEY = pmt::mp("noise_var");
} // namespace

mmse_equalizer_cc::sptr mmse_equalizer_cc::make(double signal_power, double noise_var)
{
    return gnuradio::make_block_sptr<mmse_equalizer_cc_impl>(signal_power, noise_var);
}

mmse_equalizer_cc_impl::mmse_equalizer_cc_impl(double signal_power, double noise_var)
    : gr::sync_block("mmse_equalizer_cc",
                     gr::io_signature::make(2, 2, sizeof(gr_complex)),
                     gr::io_signature::make(2, 2, sizeof(gr_complex)))
{
    update(signal_power, noise_var);
    set_tag_propagation_policy(TPP_ONE_TO_ONE); // y -> zhat, h -> w
    message_port_register_in(CMD_PORT);
    set_msg_handler(CMD_PORT, [this](const pmt::pmt_t& msg) { handle_cmd(msg); });
}

mmse_equalizer_cc_impl::~mmse_equalizer_cc_impl() {}

void mmse_equalizer_cc_impl::update(double signal_power, double noise_var)
{
    if (!(signal_power > 0.0) || std::isinf(signal_power))
        throw std::invalid_argument("signal power must be finite and > 0, got " +
                                    std::to_string(signal_power));
    if (!(noise_var >= 0.0) || std::isinf(noise_var))
        throw std::invalid_argument("noise variance must be finite and >= 0, got " +
                                    std::to_string(noise_var));
    gr::thread::scoped_lock lock(d_setlock);
    d_signal_power = signal_power;
    d_noise_var = noise_var;
}

void mmse_equalizer_cc_impl::set_signal_power(double signal_power)
{
    update(signal_power, d_noise_var);
}

void mmse_equalizer_cc_impl::set_noise_var(double noise_var)
{
    update(d_signal_power, noise_var);
}

void mmse_equalizer_cc_impl::handle_cmd(const pmt::pmt_t& msg)
{
    pmt::pmt_t dict = msg;
    if (pmt::is_pair(msg) && !pmt::is_dict(msg))
        dict = pmt::dict_add(pmt::make_dict(), pmt::car(msg), pmt::cdr(msg));
    if (!pmt::is_dict(dict)) {
        d_logger->warn("cmd: expected a dict or a pair, got {}", pmt::write_string(msg));
        return;
    }
    double power = d_signal_power, noise = d_noise_var;
    try {
        if (pmt::dict_has_key(dict, POWER_KEY))
            power = pmt::to_double(pmt::dict_ref(dict, POWER_KEY, pmt::PMT_NIL));
        if (pmt::dict_has_key(dict, NOISE_KEY))
            noise = pmt::to_double(pmt::dict_ref(dict, NOISE_KEY, pmt::PMT_NIL));
        update(power, noise);
    } catch (const std::exception& e) {
        d_logger->warn("cmd ignored ({}): {}", e.what(), pmt::write_string(msg));
    }
}

int mmse_equalizer_cc_impl::work(int noutput_items,
                                 gr_vector_const_void_star& input_items,
                                 gr_vector_void_star& output_items)
{
    // Plain float arithmetic on the interleaved (re, im) pairs: std::complex
    // multiplication carries NaN/Inf recovery branches that block vectorisation.
    const float* __restrict y = static_cast<const float*>(input_items[0]);
    const float* __restrict h = static_cast<const float*>(input_items[1]);
    float* __restrict zhat = static_cast<float*>(output_items[0]);
    float* __restrict w = static_cast<float*>(output_items[1]);

    float ps, amp, nv;
    {
        gr::thread::scoped_lock lock(d_setlock);
        ps = static_cast<float>(d_signal_power);
        amp = static_cast<float>(std::sqrt(d_signal_power));
        nv = static_cast<float>(d_noise_var);
    }

    for (int i = 0; i < noutput_items; i++) {
        const float hr = h[2 * i], hi = h[2 * i + 1];
        const float yr = y[2 * i], yi = y[2 * i + 1];
        // w = sqrt(Ps) conj(h) / (Ps |h|^2 + sigma^2)
        const float scale = amp / (ps * (hr * hr + hi * hi) + nv);
        const float wr = scale * hr, wi = -scale * hi;
        w[2 * i] = wr;
        w[2 * i + 1] = wi;
        zhat[2 * i] = wr * yr - wi * yi;
        zhat[2 * i + 1] = wr * yi + wi * yr;
    }
    return noutput_items;
}

} /* namespace semcom */
} /* namespace gr */
