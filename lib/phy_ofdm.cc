/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "phy_ofdm.h"
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace gr {
namespace semcom {
namespace phy {

namespace {
const std::array<int, N_PILOT> PILOTS = { -21, -7, 7, 21 };
const std::array<double, N_PILOT> PILOT_SYMBOLS = { 1.0, 1.0, 1.0, -1.0 };
constexpr int SEED_LTS = 0x1E1E, SEED_PN = 0x3A3A;
constexpr int INTERLEAVER_STRIDE = 113;
constexpr int HEADER_ROWS = 12; // the header's block interleaver: 12 rows x 16 columns
constexpr int BODY_BITS = 70;   // version 2, scheme 16, image 24, seq 12, k 16
constexpr int CRC_BITS = 16;
constexpr double LTS_TIME = 1.5; // where the training pair's estimate holds (S&C = 0)
constexpr double NOISE_FLOOR = 1e-6;
constexpr double SIGNIFICANCE = 2.0;
constexpr double PI = 3.14159265358979323846;

int bin(int carrier) { return ((carrier % FFT_LEN) + FFT_LEN) % FFT_LEN; }
bool is_pilot(int c) { return std::find(PILOTS.begin(), PILOTS.end(), c) != PILOTS.end(); }

// The trellis of header.py: state = the last 6 bits, newest in the top bit; SYM[s][b][0..1]
// the coded pair of input b in state s as +-1 (bit 0 -> +1).
struct trellis {
    int sym[64][2][2];
    trellis()
    {
        const int gens[2] = { 0133, 0171 };
        for (int s = 0; s < 64; s++)
            for (int b = 0; b < 2; b++) {
                int reg[7];
                reg[0] = b;
                for (int i = 0; i < 6; i++)
                    reg[i + 1] = (s >> (5 - i)) & 1;
                for (int g = 0; g < 2; g++) {
                    int parity = 0;
                    for (int i = 0; i < 7; i++)
                        parity ^= reg[i] & ((gens[g] >> (6 - i)) & 1);
                    sym[s][b][g] = 1 - 2 * parity;
                }
            }
    }
};
const trellis TRELLIS;

int interleaver_stride(int n)
{
    int stride = INTERLEAVER_STRIDE;
    while (std::gcd(stride, n) != 1)
        stride += 2;
    return stride;
}

int bits_value(const uint8_t* bits, int width)
{
    int v = 0;
    for (int i = 0; i < width; i++)
        v = (v << 1) | bits[i];
    return v;
}

// np.unwrap (discont pi) in place
void unwrap(std::vector<double>& p)
{
    // corrections accumulate over the original differences
    const std::vector<double> orig(p);
    double correction = 0.0;
    for (size_t i = 1; i < p.size(); i++) {
        const double d = orig[i] - orig[i - 1];
        double dd = std::fmod(d + PI, 2 * PI);
        if (dd < 0)
            dd += 2 * PI; // numpy's mod takes the divisor's sign
        dd -= PI;
        if (dd == -PI && d > 0)
            dd = PI;
        if (std::abs(d) >= PI)
            correction += dd - d;
        p[i] = orig[i] + correction;
    }
}

// Least-squares straight line a + b t through (t_m, v_m), evaluated at t_m (in place).
void fit_line(const std::vector<double>& t, std::vector<double>& v)
{
    const size_t m = t.size();
    double st = 0, sv = 0;
    for (size_t i = 0; i < m; i++) {
        st += t[i];
        sv += v[i];
    }
    const double mt = st / m, mv = sv / m;
    double stt = 0, stv = 0;
    for (size_t i = 0; i < m; i++) {
        stt += (t[i] - mt) * (t[i] - mt);
        stv += (t[i] - mt) * (v[i] - mv);
    }
    const double b = stv / stt;
    for (size_t i = 0; i < m; i++)
        v[i] = mv + b * (t[i] - mt);
}
} // namespace

double ChannelEstimate::gain() const
{
    double sum = 0.0;
    for (int c = -26; c <= 26; c++)
        if (c != 0 && !is_pilot(c))
            sum += std::norm(h[bin(c)]);
    return std::max(sum / N_DATA - error_var, 1e-12);
}

std::vector<float> prbs15_signs(int n, int state)
{
    std::vector<float> out(n);
    for (int i = 0; i < n; i++) {
        const int bit = ((state >> 14) ^ (state >> 13)) & 1;
        state = ((state << 1) | bit) & 0x7FFF;
        out[i] = 1.0f - 2.0f * bit;
    }
    return out;
}

int crc16(const uint8_t* bits, int n)
{
    int reg = 0xFFFF;
    for (int i = 0; i < n; i++) {
        const int top = ((reg >> 15) & 1) ^ bits[i];
        reg = (reg << 1) & 0xFFFF;
        if (top)
            reg ^= 0x1021;
    }
    return reg;
}

std::vector<uint8_t> viterbi_decode(const double* soft, int n_bits)
{
    // add-compare-select over destination states: dst's input bit is dst >> 5, its
    // predecessors (dst & 31) << 1 and that | 1; ties keep the first (as numpy's b > a)
    const double NEG = -std::numeric_limits<double>::infinity();
    std::array<double, 64> metric, next;
    metric.fill(NEG);
    metric[0] = 0.0;
    std::vector<uint8_t> choice(static_cast<size_t>(n_bits) * 64);
    for (int t = 0; t < n_bits; t++) {
        const double s0 = soft[2 * t], s1 = soft[2 * t + 1];
        for (int dst = 0; dst < 64; dst++) {
            const int bit = dst >> 5;
            const int p0 = (dst & 31) << 1, p1 = p0 | 1;
            const double a = metric[p0] + (TRELLIS.sym[p0][bit][0] * s0 + TRELLIS.sym[p0][bit][1] * s1);
            const double b = metric[p1] + (TRELLIS.sym[p1][bit][0] * s0 + TRELLIS.sym[p1][bit][1] * s1);
            const bool c = b > a;
            choice[static_cast<size_t>(t) * 64 + dst] = c;
            next[dst] = c ? b : a;
        }
        metric = next;
    }
    std::vector<uint8_t> bits(n_bits);
    int state = 0;
    for (int t = n_bits - 1; t >= 0; t--) {
        bits[t] = state >> 5;
        state = ((state & 31) << 1) | choice[static_cast<size_t>(t) * 64 + state];
    }
    return bits;
}

receiver::receiver(int cp_len, int smooth_taps) : d_cp_len(cp_len), d_smooth_taps(smooth_taps)
{
    if (cp_len < 1 || cp_len >= FFT_LEN)
        throw std::invalid_argument("cp_len must be in 1.." + std::to_string(FFT_LEN - 1) + ", got " +
                                    std::to_string(cp_len));
    if (smooth_taps < 0 || smooth_taps >= N_ACTIVE)
        throw std::invalid_argument("smoothing taps must be an integer in 0.." + std::to_string(N_ACTIVE - 1) +
                                    " (0 = off), got " + std::to_string(smooth_taps));
    int a = 0, d = 0;
    for (int c = -26; c <= 26; c++) {
        if (c == 0)
            continue;
        d_active[a] = c;
        d_active_bin[a++] = bin(c);
        if (!is_pilot(c)) {
            d_data[d] = c;
            d_data_bin[d++] = bin(c);
        }
    }
    const auto lts = prbs15_signs(N_ACTIVE, SEED_LTS);
    std::copy(lts.begin(), lts.end(), d_lts.begin());
    d_pn = prbs15_signs(MAX_K, SEED_PN);
    for (int j = 0; j < HEADER_BITS; j++)
        d_header_pos[j] = (j % HEADER_ROWS) * (HEADER_BITS / HEADER_ROWS) + j / HEADER_ROWS;
    for (int m = 0; m < FFT_LEN; m++)
        d_unit[m] = std::polar(1.0, 2 * PI * m / FFT_LEN);
    d_fft = std::make_unique<gr::fft::fft_complex_fwd>(FFT_LEN, 1);
    // the training symbol in time (unnormalised IFFT), conjugated for the fine timing
    for (int n = 0; n < FFT_LEN; n++) {
        cdouble v = 0.0;
        for (int i = 0; i < N_ACTIVE; i++)
            v += d_lts[i] * d_unit[(d_active_bin[i] * n) % FFT_LEN];
        d_lts_time_conj[n] = std::conj(v);
    }

    if (smooth_taps > 0) {
        // The projection onto the span of exp(-2 pi i c t / 64), t = 0..taps-1, over the
        // active carriers: an orthonormal basis by Gram-Schmidt, twice (the basis has a
        // condition number up to ~3e8 at 51 taps; normal equations would lose it). A window
        // starting at delay s is the same projection conjugated by exp(-2 pi i c s / 64).
        const int taps = smooth_taps;
        std::vector<cdouble> q(static_cast<size_t>(taps) * N_ACTIVE);
        for (int t = 0; t < taps; t++) {
            cdouble* v = &q[static_cast<size_t>(t) * N_ACTIVE];
            for (int i = 0; i < N_ACTIVE; i++)
                v[i] = std::conj(d_unit[bin(d_active[i] * t)]);
            for (int pass = 0; pass < 2; pass++)
                for (int u = 0; u < t; u++) {
                    const cdouble* w = &q[static_cast<size_t>(u) * N_ACTIVE];
                    cdouble dot = 0.0;
                    for (int i = 0; i < N_ACTIVE; i++)
                        dot += std::conj(w[i]) * v[i];
                    for (int i = 0; i < N_ACTIVE; i++)
                        v[i] -= dot * w[i];
                }
            double norm = 0.0;
            for (int i = 0; i < N_ACTIVE; i++)
                norm += std::norm(v[i]);
            norm = std::sqrt(norm);
            for (int i = 0; i < N_ACTIVE; i++)
                v[i] /= norm;
        }
        d_projection.assign(N_ACTIVE * N_ACTIVE, 0.0);
        for (int t = 0; t < taps; t++) {
            const cdouble* w = &q[static_cast<size_t>(t) * N_ACTIVE];
            for (int i = 0; i < N_ACTIVE; i++)
                for (int j = 0; j < N_ACTIVE; j++)
                    d_projection[i * N_ACTIVE + j] += w[i] * std::conj(w[j]);
        }
    }
}

int receiver::fine_timing(const cfloat* x, int lo, int hi, double cfo) const
{
    // phy/estimate.py's fine_timing: |correlation with the known symbol|^2 over both training
    // symbols, each window derotated by the sync's offset; ties go to the earliest shift
    const double step = -2.0 * cfo / FFT_LEN;
    std::array<cdouble, FFT_LEN> ref;
    for (int n = 0; n < FFT_LEN; n++)
        ref[n] = d_lts_time_conj[n] * std::polar(1.0, step * n);
    double best = -1.0;
    int best_d = -lo;
    for (int d = -lo; d <= hi; d++) {
        double score = 0.0;
        for (int s = 0; s < 2; s++) {
            const cfloat* w = x + d + s * symbol_len();
            cdouble acc = 0.0;
            for (int n = 0; n < FFT_LEN; n++)
                acc += cdouble(w[n]) * ref[n];
            score += std::norm(acc);
        }
        if (score > best) {
            best = score;
            best_d = d;
        }
    }
    return best_d;
}

void receiver::derotate_fft(const cfloat* rows, int n_rows, double cfo, int first_symbol, cdouble* out)
{
    // phase -2 cfo / fft_len per sample, origin at the frame's first sample
    const double step = -2.0 * cfo / FFT_LEN;
    std::array<cdouble, FFT_LEN> ramp;
    for (int j = 0; j < FFT_LEN; j++)
        ramp[j] = std::polar(1.0, step * j);
    gr_complex* in = d_fft->get_inbuf();
    const gr_complex* spectrum = d_fft->get_outbuf();
    for (int m = 0; m < n_rows; m++) {
        const double n0 = static_cast<double>(first_symbol + m) * symbol_len() + d_cp_len;
        const cdouble start = std::polar(1.0, step * n0);
        const cfloat* row = rows + static_cast<size_t>(m) * FFT_LEN;
        for (int j = 0; j < FFT_LEN; j++)
            in[j] = gr_complex(cdouble(row[j]) * (start * ramp[j]));
        d_fft->execute();
        cdouble* o = out + static_cast<size_t>(m) * FFT_LEN;
        for (int j = 0; j < FFT_LEN; j++)
            o[j] = cdouble(spectrum[j]);
    }
}

ChannelEstimate receiver::estimate_channel(const cdouble* y1, const cdouble* y2, int smooth_taps) const
{
    ChannelEstimate est;
    std::array<cdouble, N_ACTIVE> a, b;
    cdouble corr = 0.0;
    for (int i = 0; i < N_ACTIVE; i++) {
        a[i] = y1[d_active_bin[i]];
        b[i] = y2[d_active_bin[i]];
        corr += b[i] * std::conj(a[i]);
    }
    est.rotation = std::arg(corr);
    const cdouble half = std::polar(1.0, 0.5 * est.rotation);
    double diff = 0.0, power = 0.0;
    for (int i = 0; i < N_ACTIVE; i++) {
        a[i] *= half;
        b[i] *= std::conj(half);
        diff += std::norm(a[i] - b[i]);
        const cdouble h = (a[i] + b[i]) / (2.0 * d_lts[i]);
        est.h[d_active_bin[i]] = h;
        power += std::norm(h);
    }
    est.noise_var = std::max(diff / (2 * (N_ACTIVE - 0.5)), NOISE_FLOOR * power / N_ACTIVE);
    est.error_var = est.noise_var / 2;
    if (smooth_taps) {
        smooth(est.h, smooth_taps);
        est.error_var *= static_cast<double>(smooth_taps) / N_ACTIVE;
    }
    return est;
}

void receiver::smooth(std::array<cdouble, FFT_LEN>& h, int taps) const
{
    if (taps != d_smooth_taps)
        throw std::logic_error("this receiver's projection is for " + std::to_string(d_smooth_taps) + " taps");
    // the delay profile of the zero-filled estimate, and the window of `taps` consecutive
    // delays (circularly) holding the most of it (the first of equal ones, as np.argmax)
    std::array<cdouble, N_ACTIVE> values;
    for (int i = 0; i < N_ACTIVE; i++)
        values[i] = h[d_active_bin[i]];
    std::array<double, FFT_LEN> profile;
    for (int delay = 0; delay < FFT_LEN; delay++) {
        cdouble s = 0.0;
        for (int i = 0; i < N_ACTIVE; i++)
            s += d_unit[bin(delay * d_active[i])] * values[i];
        profile[delay] = std::norm(s);
    }
    int start = 0;
    double best = -1.0;
    for (int s = 0; s < FFT_LEN; s++) {
        double window = 0.0;
        for (int t = 0; t < taps; t++)
            window += profile[(s + t) % FFT_LEN];
        if (window > best) {
            best = window;
            start = s;
        }
    }
    // out = D P D^H values, D = diag(exp(-2 pi i c start / 64))
    std::array<cdouble, N_ACTIVE> shifted;
    for (int i = 0; i < N_ACTIVE; i++)
        shifted[i] = d_unit[bin(d_active[i] * start)] * values[i];
    h.fill(0.0);
    for (int i = 0; i < N_ACTIVE; i++) {
        cdouble s = 0.0;
        const cdouble* row = &d_projection[i * N_ACTIVE];
        for (int j = 0; j < N_ACTIVE; j++)
            s += row[j] * shifted[j];
        h[d_active_bin[i]] = std::conj(d_unit[bin(d_active[i] * start)]) * s;
    }
}

double receiver::refined_cfo(const cfloat* rows, double cfo)
{
    std::vector<cdouble> Y(PREAMBLE_SYMBOLS * FFT_LEN);
    derotate_fft(rows, PREAMBLE_SYMBOLS, cfo, 0, Y.data());
    const double rotation = estimate_channel(&Y[FFT_LEN], &Y[2 * FFT_LEN], 0).rotation;
    return cfo + rotation * FFT_LEN / (2.0 * symbol_len());
}

bool receiver::decode_header(const cdouble* hdr, const ChannelEstimate& est, Header& out, std::string& why) const
{
    // one common phase over the header plus the drift the training pair measured
    std::array<cdouble, HEADER_SYMBOLS> drift;
    cdouble sum = 0.0;
    for (int m = 0; m < HEADER_SYMBOLS; m++) {
        drift[m] = std::polar(1.0, est.rotation * (PREAMBLE_SYMBOLS + m - LTS_TIME));
        for (int p = 0; p < N_PILOT; p++) {
            const int k = bin(PILOTS[p]);
            sum += hdr[m * FFT_LEN + k] * std::conj(est.h[k] * PILOT_SYMBOLS[p]) * std::conj(drift[m]);
        }
    }
    const cdouble common = std::polar(1.0, std::arg(sum));
    const double scale = 1.0 / std::max(est.noise_var, 1e-30);
    std::array<double, HEADER_BITS> soft;
    for (int m = 0; m < HEADER_SYMBOLS; m++) {
        const cdouble phase = drift[m] * common;
        for (int j = 0; j < N_DATA; j++) {
            const int k = d_data_bin[j];
            soft[m * N_DATA + j] = (hdr[m * FFT_LEN + k] * std::conj(est.h[k] * phase)).real() * scale;
        }
    }
    for (double s : soft)
        if (!std::isfinite(s)) {
            why = "header soft values are not finite";
            return false;
        }
    std::array<double, HEADER_BITS> deinterleaved;
    for (int j = 0; j < HEADER_BITS; j++)
        deinterleaved[j] = soft[d_header_pos[j]];
    const auto bits = viterbi_decode(deinterleaved.data(), INFO_BITS);
    if (crc16(bits.data(), BODY_BITS) != bits_value(&bits[BODY_BITS], CRC_BITS)) {
        why = "header CRC failed";
        return false;
    }
    for (int i = BODY_BITS + CRC_BITS; i < INFO_BITS; i++)
        if (bits[i]) {
            why = "header padding is not zero";
            return false;
        }
    out.version = bits_value(&bits[0], 2);
    out.scheme_id = bits_value(&bits[2], 16);
    out.image_id = bits_value(&bits[18], 24);
    out.seq = bits_value(&bits[42], 12);
    out.k = bits_value(&bits[54], 16);
    if (out.version != HEADER_VERSION) {
        why = "header version " + std::to_string(out.version) + " (this PHY speaks " +
              std::to_string(HEADER_VERSION) + ")";
        return false;
    }
    if (out.k < 1) {
        why = "header k is 0";
        return false;
    }
    return true;
}

PayloadEstimate receiver::payload_estimate(
    const cdouble* body, int n_rows, const ChannelEstimate& est, int k, bool linear) const
{
    if (k < 1 || k > MAX_K || n_rows != payload_symbols(k))
        throw std::invalid_argument("a payload of k = " + std::to_string(k) + " has " +
                                    std::to_string(payload_symbols(k)) + " symbols, got " +
                                    std::to_string(n_rows));
    // pilot phases: a common phase and a slope across carriers per symbol, weighted by |h_p|^2
    std::vector<double> common(n_rows), slope(n_rows);
    std::array<cdouble, N_PILOT> ref;
    double weighted = 0.0;
    for (int p = 0; p < N_PILOT; p++) {
        ref[p] = est.h[bin(PILOTS[p])] * PILOT_SYMBOLS[p];
        weighted += std::norm(ref[p]) * PILOTS[p] * PILOTS[p];
    }
    weighted = std::max(weighted, 1e-30);
    for (int m = 0; m < n_rows; m++) {
        std::array<cdouble, N_PILOT> r;
        cdouble s = 0.0;
        for (int p = 0; p < N_PILOT; p++) {
            r[p] = body[m * FFT_LEN + bin(PILOTS[p])] * std::conj(ref[p]);
            s += r[p];
        }
        common[m] = std::arg(s);
    }
    unwrap(common);
    for (int m = 0; m < n_rows; m++) {
        const cdouble back = std::polar(1.0, -common[m]);
        double s = 0.0;
        for (int p = 0; p < N_PILOT; p++) {
            const cdouble r = body[m * FFT_LEN + bin(PILOTS[p])] * std::conj(ref[p]);
            s += std::arg(r * back) * std::norm(ref[p]) * PILOTS[p];
        }
        slope[m] = s / weighted;
    }
    if (linear && n_rows > 1) {
        std::vector<double> t(n_rows);
        for (int m = 0; m < n_rows; m++)
            t[m] = HEADER_LEN + m - LTS_TIME;
        fit_line(t, common);
        fit_line(t, slope);
    }
    // de-interleave: symbol i sits in slot (stride i) mod n; PN signs off
    const int n = n_rows * N_DATA;
    const int stride = interleaver_stride(n);
    std::vector<cdouble> y(k), h(k);
    double h_power = 0.0, y_power = 0.0;
    for (int i = 0; i < k; i++) {
        const int slot = static_cast<int>((static_cast<int64_t>(stride) * i) % n);
        const int m = slot / N_DATA, j = slot % N_DATA;
        const int c = d_data[j], kb = d_data_bin[j];
        y[i] = body[m * FFT_LEN + kb] * static_cast<double>(d_pn[i]);
        h[i] = est.h[kb] * std::polar(1.0, common[m] + slope[m] * c);
        h_power += std::norm(h[i]);
        y_power += std::norm(y[i]);
    }
    const double g = est.gain();
    const double nv = est.noise_var;
    const double mean_h2 = h_power / k;
    const double signal = mean_h2 - est.error_var;
    double interference = y_power / k - signal - nv;
    double var_h2 = 0.0;
    for (int i = 0; i < k; i++) {
        const double d = std::norm(h[i]) - mean_h2;
        var_h2 += d * d;
    }
    var_h2 /= k;
    const double error = std::sqrt(var_h2 / k + (2 * g * nv + nv * nv) / k + g * nv / N_ACTIVE +
                                   nv * nv / (N_ACTIVE - 0.5));
    if (interference < SIGNIFICANCE * error)
        interference = 0.0;
    PayloadEstimate p;
    const double scale = 1.0 / std::sqrt(g);
    p.y.resize(k);
    p.h.resize(k);
    for (int i = 0; i < k; i++) {
        p.y[i] = cfloat(y[i] * scale);
        p.h[i] = cfloat(h[i] * scale);
    }
    p.gain = g;
    p.noise_var = nv / g;
    p.interference_power = interference / g;
    p.snr_db = 10 * std::log10(1 / p.noise_var);
    p.sinr_db = 10 * std::log10(1 / (p.noise_var + p.interference_power));
    return p;
}

} // namespace phy
} // namespace semcom
} // namespace gr
