"""GNU Radio-free maths of gr-semcom (torch only).

The same functions serve the GNU Radio blocks, the batch simulator and training:
- mapping:   latent <-> power-normalised complex symbols
- channel:   SNR/SINR to powers, AWGN / Rayleigh (i.i.d. or block) fading with an interferer
- equalizer: MMSE weights and the real-valued Lemma-1 model xhat = A x + B i + C e
"""
