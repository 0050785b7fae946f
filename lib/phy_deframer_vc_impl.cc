/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "phy_deframer_vc_impl.h"
#include <gnuradio/io_signature.h>
#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace gr {
namespace semcom {

namespace {
const pmt::pmt_t PDUS = pmt::mp("pdus"), LOST = pmt::mp("lost"), PAYLOAD = pmt::mp("payload"),
                 CHANNEL = pmt::mp("channel"), ESTIMATES = pmt::mp("estimates");
const std::string FRAME_LEN = "frame_len";
constexpr int SEQ_MODULO = 4096; // the header's 12-bit sequence number
constexpr size_t KEEP_ESTIMATES = 100000;
const long MAX_ROWS = phy::receiver::payload_symbols(phy::MAX_K);
} // namespace

phy_deframer_vc::sptr phy_deframer_vc::make(int cp_len, const std::string& tracking, int max_gap)
{
    return gnuradio::make_block_sptr<phy_deframer_vc_impl>(cp_len, tracking, max_gap);
}

phy_deframer_vc_impl::phy_deframer_vc_impl(int cp_len, const std::string& tracking, int max_gap)
    : gr::sync_block("phy_deframer_vc",
                     gr::io_signature::make(1, 1, phy::FFT_LEN * sizeof(gr_complex)),
                     gr::io_signature::make(0, 0, 0)),
      d_rx(cp_len, 0),
      d_linear(tracking == "linear"),
      d_max_gap(max_gap)
{
    if (tracking != "linear" && tracking != "per-symbol")
        throw std::invalid_argument("tracking must be one of ('linear', 'per-symbol'), got '" + tracking + "'");
    if (max_gap < 0 || max_gap >= SEQ_MODULO)
        throw std::invalid_argument("max_gap must be in 0.." + std::to_string(SEQ_MODULO - 1) + ", got " +
                                    std::to_string(max_gap));
    for (const auto& port : { PDUS, LOST, PAYLOAD, CHANNEL, ESTIMATES })
        message_port_register_out(port);
}

std::vector<std::pair<double, double>> phy_deframer_vc_impl::estimates() const
{
    std::lock_guard<std::mutex> lock(d_estimates_lock);
    return { d_estimates.begin(), d_estimates.end() };
}

int phy_deframer_vc_impl::work(int noutput_items,
                               gr_vector_const_void_star& input_items,
                               gr_vector_void_star& output_items)
{
    const auto* in = static_cast<const phy::cfloat*>(input_items[0]);
    const uint64_t start = nitems_read(0);
    get_tags_in_window(d_tags, 0, 0, noutput_items);
    std::sort(d_tags.begin(), d_tags.end(), gr::tag_t::offset_compare);
    size_t next_tag = 0;
    for (int i = 0; i < noutput_items; i++) {
        // a frame starts where the demux put "frame_len" (with the header's other fields)
        std::map<std::string, pmt::pmt_t> here;
        for (; next_tag < d_tags.size() && d_tags[next_tag].offset <= start + i; next_tag++)
            if (d_tags[next_tag].offset == start + i)
                here[pmt::symbol_to_string(d_tags[next_tag].key)] = d_tags[next_tag].value;
        if (here.count(FRAME_LEN)) {
            if (d_have)
                d_logger->warn("a frame ended after {} of {} payload symbols", d_have, d_need);
            d_frame_tags = std::move(here);
            const pmt::pmt_t len = d_frame_tags[FRAME_LEN];
            // at most k = 65535's symbols: a larger (or wrapping) value is no header's, and
            // must not become an allocation
            const long need = pmt::is_integer(len) ? pmt::to_long(len) : 0;
            d_have = 0;
            d_need = 0;
            if (need < 1 || need > MAX_ROWS) {
                d_errors++;
                d_logger->error("dropped a frame (frame_len {} is not an integer in 1..{})",
                                pmt::write_string(len),
                                MAX_ROWS);
                d_frame_tags.clear();
            } else {
                d_need = static_cast<int>(need);
            }
            d_rows.resize(static_cast<size_t>(d_need) * phy::FFT_LEN);
        }
        if (d_frame_tags.empty())
            continue;
        std::copy(in + static_cast<size_t>(i) * phy::FFT_LEN,
                  in + static_cast<size_t>(i + 1) * phy::FFT_LEN,
                  d_rows.begin() + static_cast<size_t>(d_have) * phy::FFT_LEN);
        if (++d_have == d_need) {
            try {
                deliver_frame();
            } catch (const std::exception& e) {
                d_errors++;
                d_logger->error("dropped a frame ({})", e.what());
            }
            d_frame_tags.clear();
            d_have = 0;
        }
    }
    return noutput_items;
}

const pmt::pmt_t& phy_deframer_vc_impl::tag(const char* key) const
{
    const auto it = d_frame_tags.find(key);
    if (it == d_frame_tags.end())
        throw std::runtime_error(std::string("the payload came without its \"") + key + "\" tag");
    return it->second;
}

void phy_deframer_vc_impl::count_gap(int seq)
{
    // Frames between the last delivered one and this were lost (undetected, a failed header
    // or payload): one "lost" message each, so a source paced by acknowledgements does not
    // wait for them. A larger jump is a restarted (or another) transmitter.
    if (d_last_seq >= 0) {
        const int gap = (((seq - d_last_seq - 1) % SEQ_MODULO) + SEQ_MODULO) % SEQ_MODULO;
        if (gap > d_max_gap) {
            if (d_resyncs++ == 0)
                d_logger->info("sequence jumped from {} to {}: a new transmission, not counted as lost "
                               "frames (counted in resyncs; logged once)",
                               d_last_seq,
                               seq);
        } else {
            for (int i = 0; i < gap; i++)
                message_port_pub(LOST, pmt::PMT_T);
            d_lost += gap;
        }
    }
    d_last_seq = seq;
}

void phy_deframer_vc_impl::deliver_frame()
{
    phy::ChannelEstimate est;
    const pmt::pmt_t& h_tag = tag("phy_h");
    if (!pmt::is_c32vector(h_tag) || pmt::length(h_tag) != phy::FFT_LEN)
        throw std::runtime_error("the \"phy_h\" tag is not a c32vector of " + std::to_string(phy::FFT_LEN));
    const auto& h_in = pmt::c32vector_elements(h_tag);
    for (int c = 0; c < phy::FFT_LEN; c++)
        est.h[c] = phy::cdouble(h_in[c]);
    est.noise_var = pmt::to_double(tag("phy_noise_var"));
    est.error_var = pmt::to_double(tag("phy_error_var"));
    est.rotation = pmt::to_double(tag("cfo_rotation"));
    const double cfo = pmt::to_double(tag("cfo"));
    const long k_tag = pmt::to_long(tag("k"));
    const long seq = pmt::to_long(tag("seq"));
    // fields no header can carry (checked before an int cast could wrap them into range)
    if (k_tag < 1 || k_tag > phy::MAX_K)
        throw std::runtime_error("k " + std::to_string(k_tag) + " is not in 1.." + std::to_string(phy::MAX_K));
    if (seq < 0 || seq >= SEQ_MODULO)
        throw std::runtime_error("seq " + std::to_string(seq) + " is not in 0.." + std::to_string(SEQ_MODULO - 1));
    const int k = static_cast<int>(k_tag);
    const pmt::pmt_t image_id = tag("image_id");
    const pmt::pmt_t scheme_id = tag("scheme_id");
    count_gap(static_cast<int>(seq));

    d_spectra.resize(static_cast<size_t>(d_need) * phy::FFT_LEN);
    d_rx.derotate_fft(d_rows.data(), d_need, cfo, phy::HEADER_LEN, d_spectra.data());
    const auto p = d_rx.payload_estimate(d_spectra.data(), d_need, est, k, d_linear);
    {
        std::lock_guard<std::mutex> lock(d_estimates_lock);
        d_estimates.emplace_back(p.snr_db, p.sinr_db);
        if (d_estimates.size() > KEEP_ESTIMATES)
            d_estimates.pop_front();
    }
    // MMSE weights as core/equalizer.mmse_weights (unit signal power), in single precision
    std::vector<gr_complex> w(k), zhat(k);
    const float nv = static_cast<float>(p.noise_var);
    for (int i = 0; i < k; i++) {
        const float a = std::abs(p.h[i]);
        w[i] = std::conj(p.h[i]) / (a * a + nv);
        zhat[i] = w[i] * p.y[i];
    }
    pmt::pmt_t meta = pmt::make_dict();
    meta = pmt::dict_add(meta, pmt::mp("image_id"), image_id);
    meta = pmt::dict_add(meta, pmt::mp("seq"), pmt::from_long(seq));
    meta = pmt::dict_add(meta, pmt::mp("scheme_id"), scheme_id);
    meta = pmt::dict_add(meta, pmt::mp("k"), pmt::from_long(k));
    meta = pmt::dict_add(meta, pmt::mp("snr_db"), pmt::from_double(p.snr_db));
    meta = pmt::dict_add(meta, pmt::mp("sinr_db"), pmt::from_double(p.sinr_db));
    meta = pmt::dict_add(meta, pmt::mp("noise_var"), pmt::from_double(p.noise_var));
    meta = pmt::dict_add(meta, pmt::mp("interference_power"), pmt::from_double(p.interference_power));
    meta = pmt::dict_add(meta, pmt::mp("cfo"), pmt::from_double(cfo));
    meta = pmt::dict_add(meta, pmt::mp("cfo_rotation"), pmt::from_double(est.rotation));
    meta = pmt::dict_add(meta, pmt::mp("csi"), pmt::mp("estimated"));
    meta = pmt::dict_add(meta, pmt::mp("w"), pmt::init_c32vector(k, w));
    meta = pmt::dict_add(meta, pmt::mp("h"), pmt::init_c32vector(k, p.h));
    d_frames++;
    message_port_pub(PDUS, pmt::cons(meta, pmt::init_c32vector(k, zhat)));

    // for displays: the payload before equalization, |h| across the band, the estimates
    const pmt::pmt_t ids = pmt::dict_add(pmt::make_dict(), pmt::mp("image_id"), image_id);
    message_port_pub(PAYLOAD, pmt::cons(ids, pmt::init_c32vector(k, p.y)));
    std::vector<float> band(phy::FFT_LEN);
    const double norm = 1.0 / std::sqrt(std::max(p.gain, 1e-30));
    for (int i = 0; i < phy::FFT_LEN; i++)
        band[i] = static_cast<float>(std::abs(est.h[(i + phy::FFT_LEN / 2) % phy::FFT_LEN]) * norm);
    message_port_pub(CHANNEL, pmt::cons(ids, pmt::init_f32vector(band.size(), band)));
    const std::vector<float> snrs = { static_cast<float>(p.snr_db), static_cast<float>(p.sinr_db) };
    message_port_pub(ESTIMATES, pmt::cons(ids, pmt::init_f32vector(snrs.size(), snrs)));
}

} /* namespace semcom */
} /* namespace gr */
