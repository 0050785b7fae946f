#
# Copyright 2026 gr-semcom authors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""gr-semcom: semantic image links with deep JSCC and diffusion receivers.

C++ blocks (pybind11): fading_interference_channel_cc, fading_source_c, mmse_equalizer_cc.
Python blocks: symbol_mapper, symbol_demapper, gaussian_latent_source, image_source,
jscc_encoder, jscc_decoder, image_sink, icdm_canceller (the diffusion receivers);
hier blocks jscc_transmitter, jscc_receiver, equalized_to_pdu;
top blocks gaussian_link, image_link.
GNU Radio-free maths lives in gnuradio.semcom.core.
"""

# A missing or broken C++ extension must fail here, not later as an AttributeError.
try:
    from .semcom_python import *  # noqa: F401,F403
except ImportError as exc:
    raise ImportError(
        "gnuradio.semcom: the C++ extension semcom_python did not load "
        f"({exc}). Rebuild and install the module (see README.md)."
    ) from exc

from .symbol_mapper import symbol_mapper  # noqa: E402,F401
from .symbol_demapper import symbol_demapper  # noqa: E402,F401
from .gaussian_latent_source import gaussian_latent_source  # noqa: E402,F401
from .gaussian_link import gaussian_link  # noqa: E402,F401
from .image_source import image_source  # noqa: E402,F401
from .image_sink import image_sink  # noqa: E402,F401
from .jscc_encoder import jscc_encoder  # noqa: E402,F401
from .jscc_decoder import jscc_decoder  # noqa: E402,F401
from .jscc_transmitter import jscc_transmitter  # noqa: E402,F401
from .equalized_to_pdu import equalized_to_pdu  # noqa: E402,F401
from .diffusion_receiver import diffusion_receiver, icdm_canceller  # noqa: E402,F401
from .scheme_transmitter import scheme_encoder, scheme_transmitter  # noqa: E402,F401
from .scheme_receiver import scheme_receiver  # noqa: E402,F401
from .jscc_receiver import jscc_receiver  # noqa: E402,F401
from .image_link import image_link  # noqa: E402,F401
from .image_display import image_display  # noqa: E402,F401
