"""Request authentication schemes, one ``requests`` AuthBase per scheme."""
