"""The QDID-style root of trust: a tunnelling-PUF model and the security services on top.

Layers, bottom up (pyca/cryptography's "primitives apart from recipes"):

* :mod:`~devices.rot.physics`: the cell array (oxide thickness, tunnelling current, shot
  noise, temperature, voltage, aging), vectorised over chips;
* :mod:`~devices.rot.extractor`: the code-offset fuzzy extractor (bchlib BCH) -> a stable seed;
* :mod:`~devices.rot.keys`: HKDF key derivation by label and index; UEID from the identity key;
* :mod:`~devices.rot.hazmat`: key slots, monotonic counter, measurement registers, flash;
* :mod:`~devices.rot.token`: the PSA attestation token (COSE_Sign1) signer;
* :mod:`~devices.rot.device`: recipes (sign, attest, seal, measured boot) for the QDID device
  and the injected-key baseline;
* :mod:`~devices.rot.metrics`: PUF population metrics (``twin rot stats``).

Errors are in :mod:`devices.rot.errors`. The model and its parameters: docs/adr/0005.
"""
