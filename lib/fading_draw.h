/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

// Shared by the channel and the fading source: channel-type parsing and CN(0, 1) draws.

#ifndef INCLUDED_SEMCOM_FADING_DRAW_H
#define INCLUDED_SEMCOM_FADING_DRAW_H

#include <gnuradio/gr_complex.h>
#include <random>
#include <stdexcept>
#include <string>

namespace gr {
namespace semcom {

//! true for "rayleigh", false for "awgn"; anything else throws std::invalid_argument.
inline bool parse_channel_type(const std::string& type)
{
    if (type == "awgn")
        return false;
    if (type == "rayleigh")
        return true;
    throw std::invalid_argument("unknown channel type '" + type +
                                "' (expected 'awgn' or 'rayleigh')");
}

inline void check_coherence_len(int coherence_len)
{
    if (coherence_len < 1)
        throw std::invalid_argument("coherence length must be >= 1 symbol, got " +
                                    std::to_string(coherence_len));
}

//! One CN(0, 1) sample: two N(0, 1) draws (real, then imaginary) scaled by 1/sqrt(2).
template <class Rng>
inline gr_complex draw_cn01(Rng& rng, std::normal_distribution<float>& normal)
{
    constexpr float inv_sqrt2 = 0.70710678118654752f;
    const float re = normal(rng);
    const float im = normal(rng);
    return gr_complex(re * inv_sqrt2, im * inv_sqrt2);
}

} // namespace semcom
} // namespace gr

#endif /* INCLUDED_SEMCOM_FADING_DRAW_H */
