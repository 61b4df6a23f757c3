"""MSGin5G Configuration Function: UE service ID associations from its own configuration file."""
