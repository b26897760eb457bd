"""Host-to-host tests (issue 10): the seed's CIFS case between two engines."""
