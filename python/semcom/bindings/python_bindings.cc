/*
 * Copyright 2020 Free Software Foundation, Inc.
 *
 * This file is part of GNU Radio
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 */

#include <pybind11/pybind11.h>

#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

namespace py = pybind11;

// Headers for binding functions
/**************************************/
// The following comment block is used for
// gr_modtool to insert function prototypes
// Please do not delete
/**************************************/
// BINDING_FUNCTION_PROTOTYPES(
    void bind_fading_interference_channel_cc(py::module& m);
    void bind_fading_source_c(py::module& m);
    void bind_mmse_equalizer_cc(py::module& m);
    void bind_phy_deframer_vc(py::module& m);
    void bind_phy_frame_demux_cvc(py::module& m);
    void bind_phy_header_decoder_vc(py::module& m);
    void bind_phy_sync_tagger_cc(py::module& m);
// ) END BINDING_FUNCTION_PROTOTYPES


// We need this hack because import_array() returns NULL
// for newer Python versions.
// This function is also necessary because it ensures access to the C API
// and removes a warning.
void* init_numpy()
{
    import_array();
    return NULL;
}

PYBIND11_MODULE(semcom_python, m)
{
    // Initialize the numpy C API
    // (otherwise we will see segmentation faults)
    init_numpy();

    // Allow access to base block methods
    py::module::import("gnuradio.gr");

    /**************************************/
    // The following comment block is used for
    // gr_modtool to insert binding function calls
    // Please do not delete
    /**************************************/
    // BINDING_FUNCTION_CALLS(
    bind_fading_interference_channel_cc(m);
    bind_fading_source_c(m);
    bind_mmse_equalizer_cc(m);
    bind_phy_deframer_vc(m);
    bind_phy_frame_demux_cvc(m);
    bind_phy_header_decoder_vc(m);
    bind_phy_sync_tagger_cc(m);
    // ) END BINDING_FUNCTION_CALLS
}