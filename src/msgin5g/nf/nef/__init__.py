"""NEF: AKMA exposure to AFs outside the operator (TS 29.522 3gpp-akma) with OAuth 2.0 AF authorization."""
