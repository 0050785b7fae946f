#
# Copyright 2026 gr-semcom authors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""gr-semcom: semantic image links with deep JSCC and diffusion receivers.

C++ blocks (pybind11): fading_interference_channel_cc, fading_source_c, mmse_equalizer_cc,
phy_sync_tagger_cc, phy_frame_demux_cvc, phy_deframer_vc (phy_rx's), phy_header_decoder_vc.
Python blocks: symbol_mapper, symbol_demapper, snr_estimator_pdu, snr_estimator_cc, gaussian_latent_source, image_source,
jscc_encoder, jscc_decoder, image_sink, image_display, scheme_encoder, diffusion_receiver
(any scheme's receiver; icdm_canceller is its earlier name), cdiff_decoder (the cdiff scheme's),
jscna_precoder (JSCNA-AD's channel pre-compensation);
hier blocks scheme_transmitter, scheme_receiver, jscc_transmitter, jscc_receiver, equalized_to_pdu,
digital_transmitter and digital_receiver (the digital baseline with stock gr-fec LDPC);
top blocks gaussian_link, image_link.
GNU Radio-free: gnuradio.semcom.core (maths), .diffusion, .schemes (the scheme registry and
the batch engine) and .inference.

The blocks are exported lazily (PEP 562): `from gnuradio import semcom` loads nothing of
GNU Radio, pmt or the C++ extension; `semcom.image_link` (or `from gnuradio.semcom import
image_link`) loads the extension, GNU Radio and that block's module the first time it is
asked for. So the GNU Radio-free sub-packages import on a machine without GNU Radio (a GPU
box running the inference server or the batch engine; docs/server.md).
"""

import importlib as _importlib
import sys as _sys
import types as _types

# Every block: its name -> the module of this package that defines it (a new block is one
# line here). "semcom_python" is the C++ extension.
_BLOCKS = {
    "fading_interference_channel_cc": "semcom_python",
    "fading_source_c": "semcom_python",
    "mmse_equalizer_cc": "semcom_python",
    "phy_sync_tagger_cc": "semcom_python",
    "phy_header_decoder_vc": "semcom_python",
    "phy_deframer_vc": "semcom_python",
    "phy_frame_demux_cvc": "semcom_python",
    "symbol_mapper": "symbol_mapper",
    "symbol_demapper": "symbol_demapper",
    "snr_estimator_pdu": "snr_estimator",
    "snr_estimator_cc": "snr_estimator",
    "gaussian_latent_source": "gaussian_latent_source",
    "gaussian_link": "gaussian_link",
    "image_source": "image_source",
    "image_sink": "image_sink",
    "jscc_encoder": "jscc_encoder",
    "jscc_decoder": "jscc_decoder",
    "jscc_transmitter": "jscc_transmitter",
    "equalized_to_pdu": "equalized_to_pdu",
    "diffusion_receiver": "diffusion_receiver",
    "icdm_canceller": "diffusion_receiver",
    "cdiff_decoder": "cdiff_decoder",
    "jscna_precoder": "jscna_precoder",
    "scheme_encoder": "scheme_transmitter",
    "scheme_transmitter": "scheme_transmitter",
    "scheme_receiver": "scheme_receiver",
    "jscc_receiver": "jscc_receiver",
    "digital_transmitter": "digital_transmitter",
    "digital_receiver": "digital_receiver",
    "image_link": "image_link",
    "image_display": "image_display",
    "phy_tx": "phy_tx",
    "phy_framer": "phy_tx",
    "phy_rx": "phy_rx",
    "frame_multipath_cc": "frame_multipath",
    "phy_header_decoder": "phy_rx",
    "phy_deframer": "phy_rx",
}

__all__ = sorted(_BLOCKS)


def _extension():
    """The C++ extension (it loads GNU Radio). A missing or broken one fails here, with this
    message, not later as an AttributeError."""
    try:
        return _importlib.import_module(".semcom_python", __name__)
    except ImportError as exc:
        raise ImportError(
            "gnuradio.semcom: the C++ extension semcom_python did not load "
            f"({exc}). Rebuild and install the module (see README.md). The blocks need it "
            "and GNU Radio 3.10; gnuradio.semcom.core, .diffusion, .schemes and .inference do not."
        ) from exc


def __getattr__(name):
    if name == "semcom_python":  # `from . import semcom_python` in a block module: the same message
        return _extension()
    module = _BLOCKS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    ext = _extension()  # any block: the extension (and GNU Radio) first, as when all loaded eagerly
    block = getattr(ext if module == "semcom_python" else _importlib.import_module("." + module, __name__), name)
    globals()[name] = block  # cached: __getattr__ runs once per block
    return block


def __dir__():
    return sorted(set(globals()) | set(_BLOCKS))


class _Package(_types.ModuleType):
    """Keeps `semcom.<block>` the block: importing a block's module (`import
    gnuradio.semcom.jscc_encoder`, or one block module importing another) makes the import
    system set the package's attribute of that name to the module; the block is set instead."""

    def __setattr__(self, name, value):
        if (name in _BLOCKS and isinstance(value, _types.ModuleType)
                and value.__name__ == f"{__name__}.{name}" and hasattr(value, name)):
            value = getattr(value, name)
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
_BLOCKS["image_compare_display"] = "image_compare_display"; __all__ = sorted(_BLOCKS)   # several schemes side by side (Qt)
