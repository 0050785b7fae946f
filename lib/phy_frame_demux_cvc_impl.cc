/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "phy_frame_demux_cvc_impl.h"
#include "phy_header_decoder_vc_impl.h"
#include "phy_tags.h"
#include <gnuradio/io_signature.h>
#include <algorithm>

namespace gr {
namespace semcom {

phy_frame_demux_cvc::sptr phy_frame_demux_cvc::make(int cp_len, int smooth_taps, bool fine_timing)
{
    return gnuradio::make_block_sptr<phy_frame_demux_cvc_impl>(cp_len, smooth_taps, fine_timing);
}

phy_frame_demux_cvc_impl::phy_frame_demux_cvc_impl(int cp_len, int smooth_taps, bool fine_timing)
    : gr::block("phy_frame_demux_cvc",
                gr::io_signature::make(1, 1, sizeof(gr_complex)),
                gr::io_signature::make(1, 1, phy::FFT_LEN * sizeof(gr_complex))),
      d_rx(cp_len, smooth_taps),
      d_fine_timing(fine_timing),
      d_margin(fine_timing ? phy::FINE_TIMING_SEARCH : 0),
      d_rows(phy::HEADER_LEN * phy::FFT_LEN)
{
    set_tag_propagation_policy(TPP_DONT); // the payload's tags are the header's answer
}

void phy_frame_demux_cvc_impl::forecast(int noutput_items, gr_vector_int& ninput_items_required)
{
    // a header is decoded whole (with the fine timing's search either side of its trigger);
    // payload symbols go one at a time as space allows; the search keeps a margin unread
    const int sym = d_rx.symbol_len();
    ninput_items_required[0] = d_state == state::header    ? phy::HEADER_LEN * sym + 2 * d_margin
                               : d_state == state::payload ? sym
                                                           : d_margin + 1;
}

bool phy_frame_demux_cvc_impl::decode_header(const gr_complex* in, int shift)
{
    const int sym = d_rx.symbol_len();
    const gr_complex* frame = in + shift;
    for (int s = 0; s < phy::HEADER_LEN; s++)
        std::copy(frame + s * sym + d_rx.cp_len(), frame + (s + 1) * sym, &d_rows[s * phy::FFT_LEN]);
    std::string why;
    try {
        d_answer = phy_header_answer(d_rx, d_rows.data(), d_cfo, why);
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
    if (d_fine_timing)
        d_answer = pmt::dict_add(d_answer, pmt::mp("timing_shift"), pmt::from_long(shift));
    d_remaining = static_cast<int>(pmt::to_long(pmt::dict_ref(d_answer, pmt::mp("frame_len"), pmt::PMT_NIL)));
    return true;
}

bool phy_frame_demux_cvc_impl::read_cfo(uint64_t trigger)
{
    // the sync's offset rides on the trigger's sample
    get_tags_in_range(d_tags, 0, trigger, trigger + 1, phy::cfo_tag());
    d_cfo = 0.0;
    if (d_tags.empty()) {
        if (d_missing_cfo++ == 0)
            d_logger->warn("a header without its frequency-offset tag: corrected as 0 (counted in "
                           "missing_cfo; logged once)");
        return true;
    }
    try {
        d_cfo = pmt::to_double(d_tags.front().value);
    } catch (const std::exception& e) {
        d_errors++;
        d_logger->error("dropped a frame (its frequency-offset tag is not a number: {})", e.what());
        return false;
    }
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
            const uint64_t from = std::max<uint64_t>(base + used, d_search_from);
            get_tags_in_range(d_tags, 0, from, base + n_in, phy::trigger_tag());
            if (d_tags.empty()) {
                // keep the last d_margin samples: a trigger in the next call may search back
                used = std::max(used, n_in - d_margin);
                break;
            }
            uint64_t first = d_tags.front().offset;
            for (const auto& t : d_tags)
                first = std::min(first, t.offset);
            d_trigger = first;
            used = std::max(used, static_cast<int>(first - base) - d_margin);
            d_state = state::header;
        }
        if (d_state == state::header) {
            const int at = static_cast<int>(d_trigger - base); // >= used: never consumed past
            if (n_in - at < phy::HEADER_LEN * sym + d_margin)
                break;
            int shift = 0;
            bool ok = read_cfo(d_trigger);
            if (ok && d_fine_timing) {
                // LTS1's window if the trigger is right: one symbol and a prefix after it
                const int lo = std::min(phy::FINE_TIMING_SEARCH, at);
                const int peak = d_rx.fine_timing(in + at + sym + d_rx.cp_len(), lo, phy::FINE_TIMING_SEARCH, d_cfo);
                shift = std::max(peak - phy::FINE_TIMING_BACKOFF, -at);
            }
            if (ok && decode_header(in + at, shift)) {
                used = at + shift + phy::HEADER_LEN * sym;
                d_state = state::payload;
            } else { // search again from the sample after the trigger, as header_payload_demux
                d_search_from = d_trigger + 1;
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
        // the next trigger is looked for from the fine timing's margin before this frame's end
        // (with frames back to back, an early trigger lands in the previous frame's tail), and
        // that margin stays unread: the search must not depend on where the buffer is cut
        used = std::max(0, used - d_margin);
        d_search_from = base + used;
        d_state = state::find_trigger;
    }
    consume_each(used);
    return produced;
}

} /* namespace semcom */
} /* namespace gr */
