"""Offline: train emotion CNNs on FER2013 (data, core loop, run outputs, k-fold search, command line)."""
