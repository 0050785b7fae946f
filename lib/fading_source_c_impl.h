/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_SEMCOM_FADING_SOURCE_C_IMPL_H
#define INCLUDED_SEMCOM_FADING_SOURCE_C_IMPL_H

#include <gnuradio/semcom/fading_source_c.h>
#include <random>

namespace gr {
namespace semcom {

class fading_source_c_impl : public fading_source_c
{
private:
    const bool d_rayleigh;
    const int d_coherence_len;
    std::mt19937_64 d_rng;
    std::normal_distribution<float> d_normal;
    gr_complex d_h;       // current fading coefficient (held for a coherence block)
    uint64_t d_block_pos; // samples already sent in the current coherence block

public:
    fading_source_c_impl(const std::string& channel_type, int coherence_len, uint64_t seed);
    ~fading_source_c_impl() override;

    int work(int noutput_items,
             gr_vector_const_void_star& input_items,
             gr_vector_void_star& output_items) override;
};

} // namespace semcom
} // namespace gr

#endif /* INCLUDED_SEMCOM_FADING_SOURCE_C_IMPL_H */
