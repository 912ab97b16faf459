"""CT-perfusion physics: simulation of tissue curves, SVD deconvolution and perfusion maps.

``simulate`` is the forward model (also used by the digital phantom), ``deconvolution`` the
block-circulant truncated SVD, ``analysis`` turns a 4D series into CBF/CBV/MTT/Tmax maps and
``accuracy`` measures that path on a Kudo-style grid of known values.
"""
