"""UDM/ARPF: Nudm_UEAuthentication GenerateAuthData with 5G HE AKA vectors (TS 29.503)."""
