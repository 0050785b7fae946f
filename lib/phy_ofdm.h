/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

/* The OFDM receiver's per-frame maths in C++: the same computations as the numpy reference
 * (python/semcom/phy/frame.py, header.py, estimate.py; read their docstrings for the why),
 * for phy_rx's blocks, which must keep up with a radio. No scheduler or PMT code here.
 * The FFT is single precision (FFTW via gr::fft); everything after it is double, so results
 * agree with numpy's complex128 within float32 rounding. */

#ifndef INCLUDED_SEMCOM_PHY_OFDM_H
#define INCLUDED_SEMCOM_PHY_OFDM_H

#include <gnuradio/fft/fft.h>
#include <array>
#include <complex>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gr {
namespace semcom {
namespace phy {

using cdouble = std::complex<double>;
using cfloat = std::complex<float>;

constexpr int FFT_LEN = 64;
constexpr int N_DATA = 48;
constexpr int N_PILOT = 4;
constexpr int N_ACTIVE = 52;
constexpr int PREAMBLE_SYMBOLS = 3;
constexpr int HEADER_SYMBOLS = 4;
constexpr int HEADER_LEN = PREAMBLE_SYMBOLS + HEADER_SYMBOLS;
constexpr int HEADER_BITS = HEADER_SYMBOLS * N_DATA; // 192 coded bits
constexpr int INFO_BITS = HEADER_BITS / 2;           // 96
constexpr int HEADER_VERSION = 1;
constexpr int MAX_K = 65535; // the header's 16-bit k
// phy/estimate.py's FINE_TIMING_SEARCH and FINE_TIMING_BACKOFF
constexpr int FINE_TIMING_SEARCH = 24;
constexpr int FINE_TIMING_BACKOFF = 3;

struct ChannelEstimate {
    std::array<cdouble, FFT_LEN> h{}; // natural order, 0 off the active carriers
    double noise_var = 0.0;
    double rotation = 0.0;
    double error_var = 0.0;
    double gain() const; // mean |h|^2 over the data carriers less error_var (>= 1e-12)
};

struct Header {
    int version = 0, scheme_id = 0, image_id = 0, seq = 0, k = 0;
};

struct PayloadEstimate {
    std::vector<cfloat> y, h; // unit-signal-power domain, PN signs removed
    double noise_var = 0.0, interference_power = 0.0, snr_db = 0.0, sinr_db = 0.0, gain = 0.0;
};

/*! Carrier plan, fixed sequences and scratch buffers of one receiver (not thread-safe:
 *  one per block). */
class receiver
{
public:
    /*! Throws std::invalid_argument for cp_len outside 1..63 or smooth_taps outside 0..51. */
    receiver(int cp_len, int smooth_taps);

    int cp_len() const { return d_cp_len; }
    int symbol_len() const { return FFT_LEN + d_cp_len; }
    static int payload_symbols(int k) { return (k + N_DATA - 1) / N_DATA; }

    /*! n_rows time-domain symbols without their prefixes (frame symbols first_symbol...)
     *  -> natural-order FFTs with the offset removed (derotate_fft). out: n_rows * 64. */
    void derotate_fft(const cfloat* rows, int n_rows, double cfo, int first_symbol, cdouble* out);
    /*! fine_timing (phy/estimate.py): x points where LTS1's FFT window starts if the trigger
     *  is right; x[-lo] .. x[hi + symbol_len() + 63] must exist. Returns the shift in
     *  [-lo, hi] whose windows correlate best with the known training pair. */
    int fine_timing(const cfloat* x, int lo, int hi, double cfo) const;
    /*! estimate_channel: the two training symbols' FFTs -> h, sigma^2, rotation. */
    ChannelEstimate estimate_channel(const cdouble* y1, const cdouble* y2, int smooth_taps) const;
    /*! refined_cfo: rows are the frame's first three symbols without prefixes. */
    double refined_cfo(const cfloat* rows, double cfo);
    /*! decode_header: the four header symbols' FFTs -> true and the header, or false and
     *  why (CRC, padding, version, k = 0, soft values not finite). */
    bool decode_header(const cdouble* hdr, const ChannelEstimate& est, Header& out, std::string& why) const;
    /*! payload_estimate: the payload symbols' FFTs (payload_symbols(k) rows). */
    PayloadEstimate
    payload_estimate(const cdouble* body, int n_rows, const ChannelEstimate& est, int k, bool linear) const;

    int smooth_taps() const { return d_smooth_taps; }
    const std::array<int, N_DATA>& data_bins() const { return d_data_bin; }

private:
    int d_cp_len;
    int d_smooth_taps;
    std::array<int, N_ACTIVE> d_active;      // signed, sorted
    std::array<int, N_ACTIVE> d_active_bin;  // natural FFT bins
    std::array<int, N_DATA> d_data;          // signed, DATA_CARRIERS order
    std::array<int, N_DATA> d_data_bin;
    std::array<double, N_ACTIVE> d_lts;      // the training symbol on the active carriers
    std::array<int, HEADER_BITS> d_header_pos; // coded bit j sits in header slot d_header_pos[j]
    std::vector<float> d_pn;                 // the PN signs, MAX_K of them
    std::vector<cdouble> d_projection;       // 52 x 52: projection onto delays 0..taps-1
    std::array<cdouble, FFT_LEN> d_unit;     // exp(2 pi i m / 64)
    std::array<cdouble, FFT_LEN> d_lts_time_conj; // conj of the training symbol in time
    std::unique_ptr<gr::fft::fft_complex_fwd> d_fft;

    void smooth(std::array<cdouble, FFT_LEN>& h, int taps) const;
};

/*! The soft-decision Viterbi of header.py (802.11's K = 7 code, trellis from and to state 0):
 *  2 * n soft values (positive = bit 0) -> n bits. */
std::vector<uint8_t> viterbi_decode(const double* soft, int n_bits);
/*! CRC-16/CCITT-FALSE of a bit sequence, MSB first. */
int crc16(const uint8_t* bits, int n);
/*! n values of PRBS-15 (x^15 + x^14 + 1) from state, as signs 1 - 2 b. */
std::vector<float> prbs15_signs(int n, int state);

} // namespace phy
} // namespace semcom
} // namespace gr

#endif /* INCLUDED_SEMCOM_PHY_OFDM_H */
