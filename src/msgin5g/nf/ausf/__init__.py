"""AUSF: Nausf_UEAuthentication with 5G AKA (TS 29.509) and AKMA key registration (TS 33.535)."""
