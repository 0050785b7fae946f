/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "phy_header_decoder_vc_impl.h"
#include "phy_tags.h"
#include <gnuradio/io_signature.h>
#include <algorithm>
#include <stdexcept>

namespace gr {
namespace semcom {

namespace {
const pmt::pmt_t OUT_PORT = pmt::mp("header_data");
} // namespace

phy_header_decoder_vc::sptr phy_header_decoder_vc::make(int cp_len, int smooth_taps)
{
    return gnuradio::make_block_sptr<phy_header_decoder_vc_impl>(cp_len, smooth_taps);
}

phy_header_decoder_vc_impl::phy_header_decoder_vc_impl(int cp_len, int smooth_taps)
    : gr::sync_block("phy_header_decoder_vc",
                     gr::io_signature::make(1, 1, phy::FFT_LEN * sizeof(gr_complex)),
                     gr::io_signature::make(0, 0, 0)),
      d_rx(cp_len, smooth_taps),
      d_rows(phy::HEADER_LEN * phy::FFT_LEN)
{
    message_port_register_out(OUT_PORT);
}

int phy_header_decoder_vc_impl::work(int noutput_items,
                                     gr_vector_const_void_star& input_items,
                                     gr_vector_void_star& output_items)
{
    // The demux sends exactly HEADER_LEN symbols per trigger and waits for this block's
    // answer before the next header, so counting symbols keeps the frames aligned.
    const auto* in = static_cast<const phy::cfloat*>(input_items[0]);
    const uint64_t start = nitems_read(0);
    get_tags_in_window(d_tags, 0, 0, noutput_items, phy::cfo_tag());
    for (int i = 0; i < noutput_items; i++) {
        if (d_have == 0) {
            const auto tag = std::find_if(
                d_tags.begin(), d_tags.end(), [&](const gr::tag_t& t) { return t.offset == start + i; });
            if (tag == d_tags.end()) {
                if (d_missing_cfo++ == 0)
                    d_logger->warn("a header without its frequency-offset tag: corrected as 0 (counted "
                                   "in missing_cfo; logged once)");
                d_cfo = 0.0;
            } else {
                try {
                    d_cfo = pmt::to_double(tag->value);
                } catch (const std::exception& e) { // that frame's error, answered below
                    d_cfo_error = std::string("the \"phy_cfo\" tag: ") + e.what();
                }
            }
        }
        std::copy(in + static_cast<size_t>(i) * phy::FFT_LEN,
                  in + static_cast<size_t>(i + 1) * phy::FFT_LEN,
                  d_rows.begin() + static_cast<size_t>(d_have) * phy::FFT_LEN);
        if (++d_have == phy::HEADER_LEN) {
            d_have = 0;
            pmt::pmt_t answer;
            try {
                if (!d_cfo_error.empty()) {
                    const std::string why = std::move(d_cfo_error);
                    d_cfo_error.clear();
                    throw std::runtime_error(why);
                }
                answer = decode_frame();
            } catch (const std::exception& e) { // never leave the demux waiting for an answer
                d_errors++;
                d_logger->error("dropped a frame ({})", e.what());
                answer = pmt::PMT_F;
            }
            message_port_pub(OUT_PORT, answer);
        }
    }
    return noutput_items;
}

pmt::pmt_t phy_header_decoder_vc_impl::decode_frame()
{
    std::string why;
    const pmt::pmt_t answer = phy_header_answer(d_rx, d_rows.data(), d_cfo, why);
    if (pmt::eq(answer, pmt::PMT_F)) {
        if (d_crc_failures++ == 0)
            d_logger->warn("dropped a frame: {} (counted in crc_failures; logged once)", why);
    } else {
        d_frames++;
    }
    return answer;
}

pmt::pmt_t phy_header_answer(phy::receiver& rx, const phy::cfloat* rows, double sync_cfo, std::string& why)
{
    std::vector<phy::cdouble> spectra(phy::HEADER_LEN * phy::FFT_LEN);
    const double cfo = rx.refined_cfo(rows, sync_cfo);
    rx.derotate_fft(rows, phy::HEADER_LEN, cfo, 0, spectra.data());
    const auto est = rx.estimate_channel(&spectra[phy::FFT_LEN], &spectra[2 * phy::FFT_LEN], rx.smooth_taps());
    phy::Header header;
    if (!rx.decode_header(&spectra[phy::PREAMBLE_SYMBOLS * phy::FFT_LEN], est, header, why))
        return pmt::PMT_F;
    std::vector<gr_complex> h(phy::FFT_LEN);
    std::transform(est.h.begin(), est.h.end(), h.begin(), [](const phy::cdouble& v) { return gr_complex(v); });
    pmt::pmt_t d = pmt::make_dict();
    d = pmt::dict_add(d, pmt::mp("frame_len"), pmt::from_long(phy::receiver::payload_symbols(header.k)));
    d = pmt::dict_add(d, pmt::mp("image_id"), pmt::from_long(header.image_id));
    d = pmt::dict_add(d, pmt::mp("seq"), pmt::from_long(header.seq));
    d = pmt::dict_add(d, pmt::mp("scheme_id"), pmt::from_long(header.scheme_id));
    d = pmt::dict_add(d, pmt::mp("k"), pmt::from_long(header.k));
    d = pmt::dict_add(d, pmt::mp("phy_noise_var"), pmt::from_double(est.noise_var));
    d = pmt::dict_add(d, pmt::mp("phy_error_var"), pmt::from_double(est.error_var));
    d = pmt::dict_add(d, pmt::mp("cfo_rotation"), pmt::from_double(est.rotation));
    d = pmt::dict_add(d, pmt::mp("cfo"), pmt::from_double(cfo));
    d = pmt::dict_add(d, pmt::mp("phy_h"), pmt::init_c32vector(h.size(), h));
    return d;
}

} /* namespace semcom */
} /* namespace gr */
