"""Networks shared by several schemes (GNU Radio-free, torch only): kl_vae, the KL-regularised
autoencoder whose latent `dnsc` and JSCNA-AD send."""
