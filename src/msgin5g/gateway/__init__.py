"""The Gateway UE (TS 23.554 clause 8.11): constrained UEs behind one UE that uses AKMA upstream."""
