"""Key derivations of 5G AKA and AKMA, and Milenage.

One module per concern: kdf (TS 33.220 Annex B.2), milenage (TS 35.206),
aka (TS 33.501 Annex A), akma (TS 33.535 Annex A and the A-KID, AF_ID and
Ua* identifiers) and supi (the SUPI as a KDF parameter). Keys are plain
bytes. This package imports nothing else from msgin5g.
"""
