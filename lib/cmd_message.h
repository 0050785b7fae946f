/* -*- c++ -*- */
/*
 * Copyright 2026 gr-semcom authors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_SEMCOM_CMD_MESSAGE_H
#define INCLUDED_SEMCOM_CMD_MESSAGE_H

#include <pmt/pmt.h>

namespace gr {
namespace semcom {

/*! A "cmd" message as a dict: a dict as it is, a (key . value) pair as a one-entry
 *  dict, anything else as PMT_NIL (the caller logs and ignores it). */
inline pmt::pmt_t cmd_as_dict(const pmt::pmt_t& msg)
{
    if (pmt::is_dict(msg))
        return msg;
    if (pmt::is_pair(msg))
        return pmt::dict_add(pmt::make_dict(), pmt::car(msg), pmt::cdr(msg));
    return pmt::PMT_NIL;
}

/*! The number under `key` in a command dict, or `fallback` when absent
 *  (pmt::to_double throws on a non-number). */
inline double cmd_number(const pmt::pmt_t& dict, const pmt::pmt_t& key, double fallback)
{
    return pmt::dict_has_key(dict, key) ? pmt::to_double(pmt::dict_ref(dict, key, pmt::PMT_NIL))
                                        : fallback;
}

} // namespace semcom
} // namespace gr

#endif /* INCLUDED_SEMCOM_CMD_MESSAGE_H */
