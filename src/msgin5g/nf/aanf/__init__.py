"""AAnF: Naanf_AKMA anchor key registration, K_AF derivation and context removal (TS 29.535)."""
