/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "phy_frame_demux_cvc_impl.h"
#include "phy_header_decoder_vc_impl.h"
#include <gnuradio/io_signature.h>
#include <algorithm>

namespace gr {
namespace semcom {

namespace {
const pmt::pmt_t CFO_KEY = pmt::mp("phy_cfo");
const pmt::pmt_t TRIGGER_KEY = pmt::mp("phy_trigger");
} // namespace

phy_frame_demux_cvc::sptr phy_frame_demux_cvc::make(int cp_len, int smooth_taps)
{
    return gnuradio::make_block_sptr<phy_frame_demux_cvc_impl>(cp_len, smooth_taps);
}

phy_frame_demux_cvc_impl::phy_frame_demux_cvc_impl(int cp_len, int smooth_taps)
    : gr::block("phy_frame_demux_cvc",
                gr::io_signature::make(1, 1, sizeof(gr_complex)),
                gr::io_signature::make(1, 1, phy::FFT_LEN * sizeof(gr_complex))),
      d_rx(cp_len, smooth_taps),
      d_rows(phy::HEADER_LEN * phy::FFT_LEN)
{
    set_tag_propagation_policy(TPP_DONT); // the payload's tags are the header's answer
}

void phy_frame_demux_cvc_impl::forecast(int noutput_items, gr_vector_int& ninput_items_required)
{
    // a header is decoded whole; payload symbols go one at a time as space allows
    const int sym = d_rx.symbol_len();
    ninput_items_required[0] = d_state == state::header    ? phy::HEADER_LEN * sym
                               : d_state == state::payload ? sym
                                                           : 1;
}

bool phy_frame_demux_cvc_impl::decode_header(const gr_complex* in, uint64_t offset)
{
    const int sym = d_rx.symbol_len();
    for (int s = 0; s < phy::HEADER_LEN; s++)
        std::copy(in + s * sym + d_rx.cp_len(), in + (s + 1) * sym, &d_rows[s * phy::FFT_LEN]);
    // the offset tag on the first symbol (where the stock demux would hand it on)
    get_tags_in_range(d_tags, 0, offset, offset + sym, CFO_KEY);
    std::string why;
    try {
        double cfo = 0.0;
        if (d_tags.empty()) {
            if (d_missing_cfo++ == 0)
                d_logger->warn("a header without its frequency-offset tag: corrected as 0 (counted in "
                               "missing_cfo; logged once)");
        } else {
            cfo = pmt::to_double(d_tags.front().value); // a malformed tag throws: that frame's error
        }
        d_answer = phy_header_answer(d_rx, d_rows.data(), cfo, why);
    } catch (const std::exception& e) {
        d_errors++;
        d_logger->error("dropped a frame ({})", e.what());
        return false;
    }
    if (pmt::eq(d_answer, pmt::PMT_F)) {
        if (d_crc_failures++ == 0)
            d_logger->warn("dropped a frame: {} (counted in crc_failures; logged once)", why);
        return false;
    }
    d_frames++;
    d_remaining = static_cast<int>(pmt::to_long(pmt::dict_ref(d_answer, pmt::mp("frame_len"), pmt::PMT_NIL)));
    return true;
}

int phy_frame_demux_cvc_impl::general_work(int noutput_items,
                                           gr_vector_int& ninput_items,
                                           gr_vector_const_void_star& input_items,
                                           gr_vector_void_star& output_items)
{
    const auto* in = static_cast<const gr_complex*>(input_items[0]);
    auto* out = static_cast<gr_complex*>(output_items[0]);
    const int n_in = ninput_items[0];
    const uint64_t base = nitems_read(0);
    const int sym = d_rx.symbol_len();
    int used = 0, produced = 0;
    for (;;) {
        if (d_state == state::find_trigger) {
            get_tags_in_range(d_tags, 0, base + used, base + n_in, TRIGGER_KEY);
            if (d_tags.empty()) {
                used = n_in;
                break;
            }
            uint64_t first = d_tags.front().offset;
            for (const auto& t : d_tags)
                first = std::min(first, t.offset);
            used = static_cast<int>(first - base);
            d_state = state::header;
        }
        if (d_state == state::header) {
            if (n_in - used < phy::HEADER_LEN * sym)
                break;
            if (decode_header(in + used, base + used)) {
                used += phy::HEADER_LEN * sym;
                d_state = state::payload;
            } else { // search again from the next sample, as header_payload_demux
                used += 1;
                d_state = state::find_trigger;
                continue;
            }
        }
        // payload: whole symbols as input and output space allow; the last keeps its final
        // sample for the next search (header_payload_demux holds one back)
        while (d_remaining > 0 && produced < noutput_items && n_in - used >= sym) {
            std::copy(in + used + d_rx.cp_len(), in + used + sym, out + produced * phy::FFT_LEN);
            if (pmt::is_dict(d_answer)) { // the payload's first symbol
                const uint64_t at = nitems_written(0) + produced;
                for (pmt::pmt_t items = pmt::dict_items(d_answer); !pmt::is_null(items); items = pmt::cdr(items))
                    add_item_tag(0, at, pmt::car(pmt::car(items)), pmt::cdr(pmt::car(items)));
                d_answer = pmt::PMT_NIL;
            }
            produced++;
            d_remaining--;
            used += d_remaining ? sym : sym - 1;
        }
        if (d_remaining > 0)
            break;
        d_state = state::find_trigger;
    }
    consume_each(used);
    return produced;
}

} /* namespace semcom */
} /* namespace gr */
