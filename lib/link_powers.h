/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_SEMCOM_LINK_POWERS_H
#define INCLUDED_SEMCOM_LINK_POWERS_H

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace gr {
namespace semcom {

/*! SNR = Ps / sigma^2 and SINR = Ps / (Pi + sigma^2) (dB) to (sigma^2, Pi).
 *  Mirrors semcom.core.channel.link_powers; throws std::invalid_argument on
 *  values no channel can have. */
struct link_powers {
    double noise_var;
    double interference_power;

    link_powers(double snr_db, double sinr_db, double signal_power)
    {
        if (!(signal_power > 0.0) || std::isinf(signal_power))
            throw std::invalid_argument("signal power must be finite and > 0, got " +
                                        std::to_string(signal_power));
        if (std::isnan(snr_db) || snr_db == -INFINITY)
            throw std::invalid_argument("SNR must be a number in dB or +inf, got " +
                                        std::to_string(snr_db));
        if (std::isnan(sinr_db) || sinr_db == -INFINITY)
            throw std::invalid_argument("SINR must be a number in dB or +inf, got " +
                                        std::to_string(sinr_db));
        if (!std::isinf(sinr_db) && sinr_db > snr_db)
            throw std::invalid_argument("SINR (" + std::to_string(sinr_db) +
                                        " dB) cannot exceed SNR (" +
                                        std::to_string(snr_db) + " dB)");
        noise_var = std::isinf(snr_db) ? 0.0 : signal_power * std::pow(10.0, -snr_db / 10.0);
        interference_power =
            std::isinf(sinr_db)
                ? 0.0
                : std::max(0.0, signal_power * std::pow(10.0, -sinr_db / 10.0) - noise_var);
    }
};

} // namespace semcom
} // namespace gr

#endif /* INCLUDED_SEMCOM_LINK_POWERS_H */
