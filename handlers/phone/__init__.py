"""Phone channels: Twilio media streams, fastphone and outbound calls."""
