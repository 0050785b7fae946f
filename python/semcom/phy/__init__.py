"""The over-the-air physical layer's maths (GNU Radio-free): the OFDM frame of analog JSCC
symbols (frame.py: layout, preamble, header with CRC, scrambler and interleaver, a numpy
reference modulator) and the receiver's estimates (estimate.py: least-squares channel from
the training pair, noise from their difference, pilot phase tracking, SNR and SINR).

The GNU Radio blocks phy_tx and phy_rx are thin wrappers of these plus stock gr-digital blocks.
"""
