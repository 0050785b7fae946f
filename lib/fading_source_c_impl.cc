/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "fading_source_c_impl.h"
#include "fading_draw.h"
#include <gnuradio/io_signature.h>
#include <algorithm>

namespace gr {
namespace semcom {

namespace {
// The source's generator is seeded through a seed sequence tagged with this constant,
// so that a source and a channel (seeded with the seed itself) given the same seed
// draw independent streams: the user's h must not repeat the channel's g or noise.
constexpr uint32_t SOURCE_STREAM_TAG = 0x68666164u; // "hfad"

std::mt19937_64 make_rng(uint64_t seed)
{
    std::seed_seq seq{ static_cast<uint32_t>(seed & 0xffffffffu),
                       static_cast<uint32_t>(seed >> 32),
                       SOURCE_STREAM_TAG };
    return std::mt19937_64(seq);
}
} // namespace

fading_source_c::sptr
fading_source_c::make(const std::string& channel_type, int coherence_len, uint64_t seed)
{
    return gnuradio::make_block_sptr<fading_source_c_impl>(channel_type, coherence_len, seed);
}

fading_source_c_impl::fading_source_c_impl(const std::string& channel_type,
                                           int coherence_len,
                                           uint64_t seed)
    : gr::sync_block("fading_source_c",
                     gr::io_signature::make(0, 0, 0),
                     gr::io_signature::make(1, 1, sizeof(gr_complex))),
      d_rayleigh(parse_channel_type(channel_type)),
      d_coherence_len(coherence_len),
      d_rng(make_rng(seed)),
      d_normal(0.0f, 1.0f),
      d_h(1.0f, 0.0f),
      d_block_pos(0)
{
    check_coherence_len(coherence_len);
}

fading_source_c_impl::~fading_source_c_impl() {}

int fading_source_c_impl::work(int noutput_items,
                               gr_vector_const_void_star& input_items,
                               gr_vector_void_star& output_items)
{
    auto* h = static_cast<gr_complex*>(output_items[0]);
    if (!d_rayleigh) {
        std::fill(h, h + noutput_items, gr_complex(1.0f, 0.0f));
        return noutput_items;
    }
    for (int i = 0; i < noutput_items; i++) {
        if (d_block_pos == 0)
            d_h = draw_cn01(d_rng, d_normal);
        if (++d_block_pos == static_cast<uint64_t>(d_coherence_len))
            d_block_pos = 0;
        h[i] = d_h;
    }
    return noutput_items;
}

} /* namespace semcom */
} /* namespace gr */
