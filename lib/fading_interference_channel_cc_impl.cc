/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "fading_interference_channel_cc_impl.h"
#include "link_powers.h"
#include "cmd_message.h"
#include "fading_draw.h"
#include <gnuradio/io_signature.h>
#include <cmath>
#include <stdexcept>

namespace gr {
namespace semcom {

namespace {
const pmt::pmt_t CMD_PORT = pmt::mp("cmd");
const pmt::pmt_t SNR_KEY = pmt::mp("snr_db");
const pmt::pmt_t SINR_KEY = pmt::mp("sinr_db");

} // namespace

fading_interference_channel_cc::sptr
fading_interference_channel_cc::make(const std::string& channel_type,
                                     int coherence_len,
                                     double snr_db,
                                     double sinr_db,
                                     double signal_power,
                                     uint64_t seed)
{
    return gnuradio::make_block_sptr<fading_interference_channel_cc_impl>(
        channel_type, coherence_len, snr_db, sinr_db, signal_power, seed);
}

fading_interference_channel_cc_impl::fading_interference_channel_cc_impl(
    const std::string& channel_type,
    int coherence_len,
    double snr_db,
    double sinr_db,
    double signal_power,
    uint64_t seed)
    : gr::sync_block("fading_interference_channel_cc",
                     gr::io_signature::make(2, 3, sizeof(gr_complex)),
                     gr::io_signature::make(2, 2, sizeof(gr_complex))),
      d_rayleigh(parse_channel_type(channel_type)),
      d_coherence_len(coherence_len),
      d_signal_power(signal_power),
      d_rng(seed),
      d_normal(0.0f, 1.0f),
      d_h(1.0f, 0.0f),
      d_g(1.0f, 0.0f),
      d_block_pos(0)
{
    check_coherence_len(coherence_len);
    update_powers(snr_db, sinr_db, false);

    // Input 0 tags go to both outputs (done in work); interferer (and external h) tags
    // are dropped.
    set_tag_propagation_policy(TPP_DONT);

    message_port_register_in(CMD_PORT);
    set_msg_handler(CMD_PORT, [this](const pmt::pmt_t& msg) { handle_cmd(msg); });
}

fading_interference_channel_cc_impl::~fading_interference_channel_cc_impl() {}

void fading_interference_channel_cc_impl::update_powers(double snr_db,
                                                        double sinr_db,
                                                        bool at_run_time)
{
    // At run time (setters, cmd) a SINR above the SNR is used as SINR = SNR (no interference
    // power): GUI sliders cross, and a setter that throws aborts a Qt application. The SINR
    // asked for is kept and comes back when the SNR rises again. Construction rejects it.
    const bool clamp = at_run_time && !std::isinf(sinr_db) && sinr_db > snr_db;
    const double used_sinr_db = clamp ? snr_db : sinr_db;
    const link_powers p(snr_db, used_sinr_db, d_signal_power); // throws before any change
    gr::thread::scoped_lock lock(d_setlock);
    if (clamp && (!d_clamped || snr_db != d_snr_db || sinr_db != d_asked_sinr_db))
        d_logger->warn("SINR {:g} dB is above SNR {:g} dB: using SINR = SNR (no interference power)",
                       sinr_db,
                       snr_db);
    else if (!clamp && d_clamped)
        d_logger->info("SINR {:g} dB, SNR {:g} dB: SINR no longer clamped", sinr_db, snr_db);
    d_clamped = clamp;
    d_snr_db = snr_db;
    d_asked_sinr_db = sinr_db;
    d_sinr_db = used_sinr_db;
    d_noise_var = p.noise_var;
    d_int_power = p.interference_power;
    d_sig_amp = static_cast<float>(std::sqrt(d_signal_power));
    d_int_amp = static_cast<float>(std::sqrt(p.interference_power));
    d_noise_amp = static_cast<float>(std::sqrt(p.noise_var / 2.0));
}

// The setters serve GUI callbacks, where an exception aborts the application: a value that
// is no dB (NaN, -inf) is logged and the old values stay, as for a bad cmd message.
void fading_interference_channel_cc_impl::set_snr_db(double snr_db)
{
    try {
        update_powers(snr_db, d_asked_sinr_db, true);
    } catch (const std::exception& e) {
        d_logger->error("SNR ignored: {}", e.what());
    }
}

void fading_interference_channel_cc_impl::set_sinr_db(double sinr_db)
{
    try {
        update_powers(d_snr_db, sinr_db, true);
    } catch (const std::exception& e) {
        d_logger->error("SINR ignored: {}", e.what());
    }
}

void fading_interference_channel_cc_impl::handle_cmd(const pmt::pmt_t& msg)
{
    const pmt::pmt_t dict = cmd_as_dict(msg);
    if (pmt::is_null(dict)) {
        d_logger->warn("cmd: expected a dict or a pair, got {}", pmt::write_string(msg));
        return;
    }
    try {
        update_powers(cmd_number(dict, SNR_KEY, d_snr_db),
                      cmd_number(dict, SINR_KEY, d_asked_sinr_db),
                      true);
    } catch (const std::exception& e) {
        // A bad command must not kill a running flowgraph: keep the old values.
        d_logger->warn("cmd ignored ({}): {}", e.what(), pmt::write_string(msg));
    }
}

int fading_interference_channel_cc_impl::work(int noutput_items,
                                              gr_vector_const_void_star& input_items,
                                              gr_vector_void_star& output_items)
{
    const auto* z = static_cast<const gr_complex*>(input_items[0]);
    const auto* u = static_cast<const gr_complex*>(input_items[1]);
    auto* y = static_cast<gr_complex*>(output_items[0]);
    auto* h_out = static_cast<gr_complex*>(output_items[1]);
    // Optional input 2: the user's fading from outside (GNU Radio connects inputs
    // contiguously from 0, so a third item means input 2 is connected).
    const auto* h_ext =
        input_items.size() > 2 ? static_cast<const gr_complex*>(input_items[2]) : nullptr;

    gr::thread::scoped_lock lock(d_setlock);
    const float a_s = d_sig_amp, a_i = d_int_amp, a_n = d_noise_amp;

    for (int i = 0; i < noutput_items; i++) {
        // The own h is drawn even when it comes from outside, so that the draws of g
        // and n are the same whether input 2 is connected or not.
        if (d_rayleigh && d_block_pos == 0) {
            d_h = draw_cn01(d_rng, d_normal);
            d_g = draw_cn01(d_rng, d_normal);
        }
        if (++d_block_pos == static_cast<uint64_t>(d_coherence_len))
            d_block_pos = 0;
        // Draw the noise even at zero power so the stream of draws, and thus the
        // fading sequence, does not depend on SNR.
        const float nr = d_normal(d_rng);
        const float ni = d_normal(d_rng);
        const gr_complex h = h_ext ? h_ext[i] : d_h;
        y[i] = a_s * h * z[i] + a_i * d_g * u[i] + gr_complex(a_n * nr, a_n * ni);
        h_out[i] = h;
    }

    std::vector<gr::tag_t> tags;
    get_tags_in_window(tags, 0, 0, noutput_items);
    for (const auto& tag : tags) {
        add_item_tag(0, tag);
        add_item_tag(1, tag);
    }
    return noutput_items;
}

} /* namespace semcom */
} /* namespace gr */
