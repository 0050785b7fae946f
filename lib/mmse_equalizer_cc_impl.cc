/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "mmse_equalizer_cc_impl.h"
#include "cmd_message.h"
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

// w = sqrt(Ps) conj(h) / (Ps |h|^2 + sigma^2), zhat = w y, on interleaved (re, im) floats.
// Plain float arithmetic: std::complex multiplication carries NaN/Inf recovery branches
// that block vectorisation. target_clones builds AVX2/AVX/baseline versions and picks
// one at load time, as VOLK would, without a VOLK kernel of our own.
// w == nullptr: the weight output is not connected; skip writing it.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "avx", "default")))
#endif
void mmse_kernel(const float* __restrict y,
                 const float* __restrict h,
                 float* __restrict zhat,
                 float* __restrict w,
                 int n,
                 float ps,
                 float amp,
                 float nv)
{
    if (w) {
        for (int i = 0; i < n; i++) {
            const float hr = h[2 * i], hi = h[2 * i + 1];
            const float yr = y[2 * i], yi = y[2 * i + 1];
            const float scale = amp / (ps * (hr * hr + hi * hi) + nv);
            const float wr = scale * hr, wi = -scale * hi;
            w[2 * i] = wr;
            w[2 * i + 1] = wi;
            zhat[2 * i] = wr * yr - wi * yi;
            zhat[2 * i + 1] = wr * yi + wi * yr;
        }
    } else {
        for (int i = 0; i < n; i++) {
            const float hr = h[2 * i], hi = h[2 * i + 1];
            const float yr = y[2 * i], yi = y[2 * i + 1];
            const float scale = amp / (ps * (hr * hr + hi * hi) + nv);
            const float wr = scale * hr, wi = -scale * hi;
            zhat[2 * i] = wr * yr - wi * yi;
            zhat[2 * i + 1] = wr * yi + wi * yr;
        }
    }
}
} // namespace

mmse_equalizer_cc::sptr mmse_equalizer_cc::make(double signal_power, double noise_var)
{
    return gnuradio::make_block_sptr<mmse_equalizer_cc_impl>(signal_power, noise_var);
}

mmse_equalizer_cc_impl::mmse_equalizer_cc_impl(double signal_power, double noise_var)
    : gr::sync_block("mmse_equalizer_cc",
                     gr::io_signature::make(2, 2, sizeof(gr_complex)),
                     gr::io_signature::make(1, 2, sizeof(gr_complex)))
{
    update(signal_power, noise_var);
    // y's tags -> zhat, h's tags -> w (done in work: w is optional, so TPP_ONE_TO_ONE,
    // which needs as many outputs as inputs, does not apply).
    set_tag_propagation_policy(TPP_DONT);
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
    const pmt::pmt_t dict = cmd_as_dict(msg);
    if (pmt::is_null(dict)) {
        d_logger->warn("cmd: expected a dict or a pair, got {}", pmt::write_string(msg));
        return;
    }
    try {
        update(cmd_number(dict, POWER_KEY, d_signal_power), cmd_number(dict, NOISE_KEY, d_noise_var));
    } catch (const std::exception& e) {
        d_logger->warn("cmd ignored ({}): {}", e.what(), pmt::write_string(msg));
    }
}

int mmse_equalizer_cc_impl::work(int noutput_items,
                                 gr_vector_const_void_star& input_items,
                                 gr_vector_void_star& output_items)
{
    float ps, amp, nv;
    {
        gr::thread::scoped_lock lock(d_setlock);
        ps = static_cast<float>(d_signal_power);
        amp = static_cast<float>(std::sqrt(d_signal_power));
        nv = static_cast<float>(d_noise_var);
    }
    mmse_kernel(static_cast<const float*>(input_items[0]),
                static_cast<const float*>(input_items[1]),
                static_cast<float*>(output_items[0]),
                output_items.size() > 1 ? static_cast<float*>(output_items[1]) : nullptr,
                noutput_items,
                ps,
                amp,
                nv);

    std::vector<gr::tag_t> tags;
    for (size_t port = 0; port < output_items.size(); port++) {
        get_tags_in_window(tags, port, 0, noutput_items);
        for (const auto& tag : tags)
            add_item_tag(port, tag);
    }
    return noutput_items;
}

} /* namespace semcom */
} /* namespace gr */
