"""SEAL CM server: UE service ID to UE ID associations over ss-upr (TS 29.549)."""
