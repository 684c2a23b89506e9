"""Hardware stages of the pipeline: quantise -> export a bundle -> simulate / verify.

``quantize`` maps trained weights onto what a target can realise, ``bundle`` writes and
reads the deployment bundle, ``simulate`` is the NumPy hardware twin, ``nir_io`` the NIR
interchange and ``verify`` the proofs that all of them agree.
"""
